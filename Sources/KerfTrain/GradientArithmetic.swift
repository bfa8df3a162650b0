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
