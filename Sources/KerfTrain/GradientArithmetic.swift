import KerfCore

/// sum += g, elementwise (float32 tensors of one shape).
func addInPlace(_ sum: Tensor, _ g: Tensor) throws {
    guard sum.dtype == .float, g.dtype == .float, sum.shape == g.shape else {
        throw KerfError.shapeMismatch("cannot accumulate a gradient \(g.dtype) \(g.shape) into \(sum.dtype) \(sum.shape)")
    }
    let s = sum.storage.pointer.assumingMemoryBound(to: Float.self), x = g.storage.pointer.assumingMemoryBound(to: Float.self)
    for i in 0..<sum.count { s[i] += x[i] }
}

/// t *= factor, elementwise (a float32 tensor).
func scaleInPlace(_ t: Tensor, _ factor: Float) {
    guard t.dtype == .float else { return }
    let p = t.storage.pointer.assumingMemoryBound(to: Float.self)
    for i in 0..<t.count { p[i] *= factor }
}

/// t *= mask, elementwise (a float32 tensor and a 0/1 mask of its element count).
func maskInPlace(_ t: Tensor, _ mask: [Float]) {
    guard t.dtype == .float, t.count == mask.count else { return }
    let p = t.storage.pointer.assumingMemoryBound(to: Float.self)
    mask.withUnsafeBufferPointer { m in
        for i in 0..<m.count { p[i] *= m[i] }
    }
}

/// A 0/1 mask of `t`'s nonzero elements, or nil unless `t` (float32) has both exact zeros and
/// other values (an all-zero tensor is a zero initialization, not a pruned one).
func nonzeroMask(_ t: Tensor) -> [Float]? {
    guard t.dtype == .float else { return nil }
    let mask = t.withElements(as: Float.self) { values in values.map { $0 == 0 ? Float(0) : 1 } }
    return mask.contains(0) && mask.contains(1) ? mask : nil
}

/// The fraction of `t`'s elements that are exactly zero (0 for an empty or non-float tensor).
func zeroFraction(_ t: Tensor) -> Double {
    guard t.count > 0, t.dtype == .float || t.dtype == .double else { return 0 }
    let zeros = t.dtype == .float ? t.withElements(as: Float.self) { $0.lazy.filter { $0 == 0 }.count }
                                  : t.withElements(as: Double.self) { $0.lazy.filter { $0 == 0 }.count }
    return Double(zeros) / Double(t.count)
}
