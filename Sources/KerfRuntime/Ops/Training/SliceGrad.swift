import KerfCore
import KerfKernels

/// The gradient of Slice with respect to its input (of `shape`): zeros with dY written where
/// the slice read (`geometry`; a slice reads each element at most once).
func sliceGradient(dY: Tensor, shape: [Int], geometry: SliceGeometry) throws -> Tensor {
    try requireGradientElement(dY, "SliceGrad")
    guard dY.shape == geometry.outShape else {
        throw KerfError.shapeMismatch("SliceGrad: gradient \(dY.shape) is not the slice's shape \(geometry.outShape)")
    }
    let out = try Tensor(zeros: dY.dtype, shape: shape)
    guard dY.count > 0 else { return out }
    let (base, strides) = geometry.offsets(in: shape)
    let size = dY.dtype.byteSize
    let src = UnsafeRawPointer(dY.storage.pointer), dst = out.storage.pointer
    var walk = Odometer(shape: dY.shape, strides: strides, at: 0)
    for i in 0..<dY.count {
        (dst + (base + walk.offset) * size).copyMemory(from: src + i * size, byteCount: size)
        walk.advance()
    }
    return out
}
