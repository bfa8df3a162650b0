import KerfCore
import KerfKernels

// MaxPool, AveragePool, LpPool, GlobalAveragePool, GlobalLpPool, GlobalMaxPool over N-d inputs
// [N, C, spatial...].

enum PoolOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["MaxPool"] = { c in
            let window = try WindowAttributes(c)
            let storageOrder = try c.int("storage_order", default: 0)
            let wantsIndices = c.node.outputs.count > 1 && !c.node.outputs[1].isEmpty
            guard let kernel = window.kernelShape else { throw KerfError.invalidModel("MaxPool needs kernel_shape") }
            let threads = c.options.resolvedThreads
            return ClosureOperator { inputs in
                try withFloat32(inputs) { ins in
                    try maxPool(try ins.required(0), kernel: kernel, window: window, columnMajorIndices: storageOrder == 1,
                                indices: wantsIndices, threads: threads)
                }
            }
        }
        r["AveragePool"] = { c in
            let window = try WindowAttributes(c)
            let includePad = try c.int("count_include_pad", default: 0) != 0
            guard let kernel = window.kernelShape else { throw KerfError.invalidModel("AveragePool needs kernel_shape") }
            return ClosureOperator { inputs in
                try withFloat32(inputs) { ins in
                    let x = try ins.required(0)
                    return [try averagePool(x, kernel: kernel, window: window, countIncludePad: includePad)]
                }
            }
        }
        r["LpPool"] = { c in
            let window = try WindowAttributes(c)
            let p = try c.int("p", default: 2)
            guard let kernel = window.kernelShape else { throw KerfError.invalidModel("LpPool needs kernel_shape") }
            guard p >= 1 else { throw KerfError.invalidModel("LpPool p must be >= 1, got \(p)") }
            return ClosureOperator { inputs in
                try withFloat32(inputs) { [try lpPool(try $0.required(0), kernel: kernel, window: window, p: p)] }
            }
        }
        r["GlobalLpPool"] = { c in
            let p = try c.int("p", default: 2)
            guard p >= 1 else { throw KerfError.invalidModel("GlobalLpPool p must be >= 1, got \(p)") }
            return ClosureOperator { inputs in
                try withFloat32(inputs) { ins in
                    let x = try ins.required(0)
                    guard x.rank >= 3 else { throw KerfError.shapeMismatch("GlobalLpPool needs rank >= 3, got \(x.shape)") }
                    return [try lpPool(x, kernel: Array(x.shape[2...]), window: nil, p: p)]
                }
            }
        }
        r["GlobalAveragePool"] = { _ in
            ClosureOperator { inputs in
                try withFloat32(inputs) { ins in
                    let x = try ins.required(0)
                    if x.dtype != .double { _ = try float32Input(x, "GlobalAveragePool") }
                    guard x.rank >= 3 else { throw KerfError.shapeMismatch("GlobalAveragePool needs rank >= 3, got \(x.shape)") }
                    return [try averagePool(x, kernel: Array(x.shape[2...]), window: nil, countIncludePad: false)]
                }
            }
        }
        r["GlobalMaxPool"] = { _ in
            ClosureOperator { inputs in
                try withFloat32(inputs) { ins in
                    let x = try ins.required(0)
                    guard x.rank >= 3 else { throw KerfError.shapeMismatch("GlobalMaxPool needs rank >= 3, got \(x.shape)") }
                    return try maxPool(x, kernel: Array(x.shape[2...]), window: nil, columnMajorIndices: false, indices: false)
                }
            }
        }
    }
}

func float32Input(_ t: Tensor, _ op: String) throws -> Tensor {
    guard t.dtype == .float else { throw KerfError.unsupported("\(op) supports float types, got \(t.dtype)") }
    return t
}

/// Splits [N, C, spatial...] into planes and the geometry of one plane.
private func planes(_ x: Tensor, kernel: [Int], window: WindowAttributes?) throws -> (Int, WindowGeometry, [Int]) {
    guard x.rank >= 3, kernel.count == x.rank - 2 else {
        throw KerfError.shapeMismatch("pooling input \(x.shape) does not fit kernel \(kernel)")
    }
    let spatial = Array(x.shape[2...])
    let w = window ?? WindowAttributes.global
    let (g, end) = try w.geometry(input: spatial, kernel: kernel)
    return (x.shape[0] * x.shape[1], g, end)
}

/// Max pooling; returns [Y] or, when `indices` is set, [Y, Indices] (int64, flat over the
/// whole input; storage_order 1 reports them column-major within each plane). Planes are
/// split over up to `threads` threads.
func maxPool(_ x: Tensor, kernel: [Int], window: WindowAttributes?, columnMajorIndices: Bool, indices wantsIndices: Bool,
             threads: Int = 1) throws -> [Tensor] {
    let (planeCount, g, _) = try planes(x, kernel: kernel, window: window)
    let outShape = Array(x.shape[..<2]) + g.outputSize
    try checkedElementCount(outShape, dtype: x.dtype, "MaxPool")
    let inCount = g.inputCount, outCount = g.outputCount
    var indices = [Int](repeating: 0, count: wantsIndices ? planeCount * outCount : 0)
    struct Body: NumericBody {
        let x: Tensor, g: WindowGeometry, planeCount: Int, outShape: [Int], indices: UnsafeMutablePointer<Int>?, threads: Int
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            let out = try Tensor(uninitialized: x.dtype, shape: outShape)
            let lowest: T = T.isFloatingPoint ? T(fromDouble: -.infinity) : T(fromDouble: -Double.greatestFiniteMagnitude)
            let xp = x.storage.pointer.assumingMemoryBound(to: T.self), yp = out.storage.pointer.assumingMemoryBound(to: T.self)
            let inCount = g.inputCount, outCount = g.outputCount, twoD = g.inputSize.count == 2
            parallelRanges(planeCount, threads: threads, grain: max(1, (1 << 15) / max(1, inCount))) { planes in
                for p in planes {
                    let (src, dst, idx) = (xp + p * inCount, yp + p * outCount, indices.map { $0 + p * outCount })
                    if T.self == Float.self, idx == nil,
                       maxPoolPlane2x2(UnsafeRawPointer(src).assumingMemoryBound(to: Float.self),
                                       UnsafeMutableRawPointer(dst).assumingMemoryBound(to: Float.self), geometry: g) { continue }
                    if T.self == Float.self, idx == nil, twoD {
                        maxPoolPlane2DFloat(UnsafeRawPointer(src).assumingMemoryBound(to: Float.self),
                                            UnsafeMutableRawPointer(dst).assumingMemoryBound(to: Float.self), geometry: g)
                        continue
                    }
                    if twoD { maxPoolPlane2D(src, dst, geometry: g, lowest: lowest, indices: idx) }
                    else { maxPoolPlane(src, dst, geometry: g, lowest: lowest, indices: idx) }
                }
            }
            return out
        }
    }
    let y = try indices.withUnsafeMutableBufferPointer {
        try dispatchNumeric(x.dtype, Body(x: x, g: g, planeCount: planeCount, outShape: outShape,
                                          indices: wantsIndices ? $0.baseAddress : nil, threads: threads))
    }
    guard wantsIndices else { return [y] }
    var flat = [Int64](repeating: 0, count: indices.count)
    let spatial = g.inputSize
    for p in 0..<planeCount {
        for o in 0..<outCount {
            var i = indices[p * outCount + o]
            if columnMajorIndices && i >= 0 {
                var rem = i, pos = [Int](repeating: 0, count: spatial.count)
                for d in stride(from: spatial.count - 1, through: 0, by: -1) { pos[d] = rem % spatial[d]; rem /= spatial[d] }
                i = 0
                for d in stride(from: spatial.count - 1, through: 0, by: -1) { i = i * spatial[d] + pos[d] }
            }
            flat[p * outCount + o] = Int64(p * inCount + i)
        }
    }
    return [y, Tensor(shape: outShape, values: flat)]
}

func averagePool(_ x: Tensor, kernel: [Int], window: WindowAttributes?, countIncludePad: Bool) throws -> Tensor {
    if x.dtype == .double { return try doubleAveragePool(x, kernel: kernel, window: window, countIncludePad: countIncludePad) }
    let x = try float32Input(x, "AveragePool")
    let (planeCount, g, end) = try planes(x, kernel: kernel, window: window)
    try checkedElementCount(Array(x.shape[..<2]) + g.outputSize, dtype: .float, "AveragePool")
    let out = try Tensor(uninitialized: .float, shape: Array(x.shape[..<2]) + g.outputSize)
    let xp = x.storage.pointer.assumingMemoryBound(to: Float.self), yp = out.storage.pointer.assumingMemoryBound(to: Float.self)
    if window == nil {
        // Global: a plain mean per plane.
        let plane = g.inputCount
        for p in 0..<planeCount {
            var s: Float = 0
            for i in 0..<plane { s += xp[p * plane + i] }
            yp[p] = s / Float(plane)
        }
        return out
    }
    let inCount = g.inputCount, outCount = g.outputCount
    for p in 0..<planeCount {
        let (src, dst) = (xp + p * inCount, yp + p * outCount)
        if g.inputSize.count == 2 { averagePoolPlane2D(src, dst, geometry: g, padsEnd: end, countIncludePad: countIncludePad) }
        else { averagePoolPlane(src, dst, geometry: g, padsEnd: end, countIncludePad: countIncludePad) }
    }
    return out
}

/// Lp pooling of a float32 or double tensor, p >= 1.
func lpPool(_ x: Tensor, kernel: [Int], window: WindowAttributes?, p: Int) throws -> Tensor {
    let (planeCount, g, _) = try planes(x, kernel: kernel, window: window)
    let outShape = Array(x.shape[..<2]) + g.outputSize
    try checkedElementCount(outShape, dtype: x.dtype, "LpPool")
    struct Body: FloatBody {
        let x: Tensor, g: WindowGeometry, planeCount: Int, outShape: [Int], p: Int
        func run<T: NumericElement & BinaryFloatingPoint>(_: T.Type) throws -> Tensor {
            var out = try Tensor(uninitialized: x.dtype, shape: outShape)
            x.withElements(as: T.self) { src in
                out.withMutableElements(as: T.self) { dst in
                    for plane in 0..<planeCount {
                        lpPoolPlane(src.baseAddress! + plane * g.inputCount, dst.baseAddress! + plane * g.outputCount, geometry: g, p: p)
                    }
                }
            }
            return out
        }
    }
    return try dispatchFloat(x.dtype, "LpPool", Body(x: x, g: g, planeCount: planeCount, outShape: outShape, p: p))
}

extension WindowAttributes {
    /// A window covering the whole input: stride 1, no padding.
    static var global: WindowAttributes {
        WindowAttributes(kernelShape: nil, strides: nil, dilations: nil, pads: nil, autoPad: "NOTSET", ceilMode: false)
    }
}
