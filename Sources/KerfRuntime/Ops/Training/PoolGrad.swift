import KerfCore
import KerfKernels

/// The gradients of the pooling ops, with the forward node's window attributes (kernel_shape,
/// strides, pads, dilations, auto_pad, ceil_mode; `global` 1 for GlobalMaxPool):
/// - `MaxPoolGrad(dY, X) -> dX`: each output's gradient goes to its window's first maximum;
/// - `AveragePoolGrad(dY, shape of X) -> dX` (count_include_pad as the forward's).
/// Image planes run in parallel.
struct PoolGradOperator: Operator {
    enum Kind { case max, average }
    let kind: Kind
    let window: WindowAttributes
    let global: Bool
    let countIncludePad: Bool
    let threads: Int

    init(_ c: OperatorContext, kind: Kind) throws {
        self.kind = kind
        window = try WindowAttributes(c)
        global = try c.int("global", default: 0) != 0
        countIncludePad = try c.int("count_include_pad", default: 0) != 0
        guard global || window.kernelShape != nil else {
            throw KerfError.invalidModel("\(kind == .max ? "MaxPoolGrad" : "AveragePoolGrad") needs kernel_shape")
        }
        threads = c.options.resolvedThreads
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let op = kind == .max ? "MaxPoolGrad" : "AveragePoolGrad"
        let dY = try inputs.required(0, "dY")
        try requireGradientElement(dY, op)
        let x: Tensor?, shape: [Int]
        if kind == .max {
            x = try inputs.required(1, "X")
            guard x!.dtype == dY.dtype else { throw KerfError.shapeMismatch("\(op): dY is \(dY.dtype) but X is \(x!.dtype)") }
            shape = x!.shape
        } else {
            x = nil
            shape = try intValues(try inputs.required(1, "shape"), "\(op) shape")
        }
        guard shape.count >= 3, shape.allSatisfy({ $0 >= 0 }) else { throw KerfError.shapeMismatch("\(op): input shape \(shape) is not [N, C, spatial...]") }
        let spatial = Array(shape[2...])
        let kernel = global ? spatial : window.kernelShape!
        guard kernel.count == spatial.count else { throw KerfError.shapeMismatch("\(op): kernel \(kernel) does not fit input \(shape)") }
        let (g, padsEnd) = try (global ? WindowAttributes.global : window).geometry(input: spatial, kernel: kernel)
        let expected = Array(shape[..<2]) + g.outputSize
        guard dY.shape == expected else { throw KerfError.shapeMismatch("\(op): dY \(dY.shape) is not the pooled shape \(expected)") }
        try checkedElementCount(shape, dtype: dY.dtype, op)
        let dX = try Tensor(zeros: dY.dtype, shape: shape)
        let planes = shape[0] * shape[1], inCount = g.inputCount, outCount = g.outputCount
        guard planes > 0, inCount > 0, outCount > 0 else { return [dX] }
        let kind = kind, countIncludePad = countIncludePad, dtype = dY.dtype
        let dy = UnsafeRawPointer(dY.storage.pointer), dx = dX.storage.pointer, xp = x.map { UnsafeRawPointer($0.storage.pointer) }
        let grain = max(1, (1 << 15) / max(1, inCount + outCount))
        teamRanges(planes, grain: grain) { range in
            for p in range {
                switch (kind, dtype) {
                case (.max, .double):
                    maxPoolBackwardPlane(xp!.assumingMemoryBound(to: Double.self) + p * inCount, dy.assumingMemoryBound(to: Double.self) + p * outCount,
                                         dx.assumingMemoryBound(to: Double.self) + p * inCount, geometry: g)
                case (.max, _):
                    maxPoolBackwardPlane(xp!.assumingMemoryBound(to: Float.self) + p * inCount, dy.assumingMemoryBound(to: Float.self) + p * outCount,
                                         dx.assumingMemoryBound(to: Float.self) + p * inCount, geometry: g)
                case (.average, .double):
                    averagePoolBackwardPlane(dy.assumingMemoryBound(to: Double.self) + p * outCount, dx.assumingMemoryBound(to: Double.self) + p * inCount,
                                             geometry: g, padsEnd: padsEnd, countIncludePad: countIncludePad)
                case (.average, _):
                    averagePoolBackwardPlane(dy.assumingMemoryBound(to: Float.self) + p * outCount, dx.assumingMemoryBound(to: Float.self) + p * inCount,
                                             geometry: g, padsEnd: padsEnd, countIncludePad: countIncludePad)
                }
            }
        }
        return [dX]
    }
}

/// AveragePool (or, with a nil window, GlobalAveragePool) of a double x[N, C, spatial...].
func doubleAveragePool(_ x: Tensor, kernel: [Int], window: WindowAttributes?, countIncludePad: Bool) throws -> Tensor {
    guard x.rank >= 3, kernel.count == x.rank - 2 else { throw KerfError.shapeMismatch("pooling input \(x.shape) does not fit kernel \(kernel)") }
    let (g, padsEnd) = try (window ?? WindowAttributes.global).geometry(input: Array(x.shape[2...]), kernel: kernel)
    let shape = Array(x.shape[..<2]) + g.outputSize
    try checkedElementCount(shape, dtype: .double, "AveragePool")
    let y = try Tensor(zeros: .double, shape: shape)
    let planes = x.shape[0] * x.shape[1], inCount = g.inputCount, outCount = g.outputCount
    guard inCount > 0 else { return y }
    let xp = x.storage.pointer.assumingMemoryBound(to: Double.self), yp = y.storage.pointer.assumingMemoryBound(to: Double.self)
    for p in 0..<planes {
        averagePoolPlane(xp + p * inCount, yp + p * outCount, geometry: g, padsEnd: padsEnd, countIncludePad: countIncludePad)
    }
    return y
}
