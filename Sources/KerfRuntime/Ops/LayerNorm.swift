import KerfCore
import KerfKernels

// LayerNormalization (opset 17): normalizes over the dims from `axis` on; outputs Y and,
// optionally, Mean and InvStdDev (shape [d0, ..., d(axis-1), 1, ..., 1], stash-type dtype).

/// `t` as exactly `count` elements laid out as `normShape`, broadcasting it when needed.
func normalizedParameter(_ t: Tensor, _ normShape: [Int], _ what: String, op: String = "LayerNormalization") throws -> Tensor {
    let n = normShape.reduce(1, *)
    let strip = { (s: [Int]) in Array(s.drop { $0 == 1 }) }
    if t.count == n && strip(t.shape) == strip(normShape) { return t.reshaped(normShape) }
    guard t.rank <= normShape.count, broadcastShape(normShape, t.shape) == normShape else {
        throw KerfError.shapeMismatch("\(op): \(what) of shape \(t.shape) does not broadcast to \(normShape)")
    }
    return try materializeBroadcast(t, to: normShape)
}

/// An input to a normalization over the dims from `axis` on, as rows: `xs` holds `rows` rows of
/// `n` elements in `computeType` (float or double; float16 and bfloat16 converted to float32,
/// `half`), `normShape` the normalized dims.
struct NormalizationRows {
    let computeType: DType
    let half: Bool
    let axis: Int
    let normShape: [Int]
    let rows: Int, n: Int
    let xs: Tensor

    init(_ x: Tensor, axis: Int, op: String) throws {
        half = x.dtype == .float16 || x.dtype == .bfloat16
        computeType = half ? .float : x.dtype
        guard computeType == .float || computeType == .double else {
            throw KerfError.unsupported("\(op) on \(x.dtype) is not supported (float types only)")
        }
        guard x.rank > 0 else { throw KerfError.shapeMismatch("\(op) needs an input of rank >= 1") }
        self.axis = try normalizeAxis(axis, rank: x.rank)
        normShape = Array(x.shape[self.axis...])
        rows = x.shape[..<self.axis].reduce(1, *)
        n = normShape.reduce(1, *)
        xs = try half ? x.convertedToFloat32() : x
    }
}

/// Float rows are split over up to `threads` threads.
func layerNormalization(_ x: Tensor, scale: Tensor, bias: Tensor?, axis: Int, epsilon: Float, stashType: Int,
                        threads: Int = 1) throws -> [Tensor] {
    let layout = try NormalizationRows(x, axis: axis, op: "LayerNormalization")
    let (computeType, half, a, normShape, rows, n, xs) = (layout.computeType, layout.half, layout.axis, layout.normShape,
                                                          layout.rows, layout.n, layout.xs)
    let toCompute = { (t: Tensor) throws -> Tensor in try cast(t, to: computeType) }
    let s = try normalizedParameter(try toCompute(scale), normShape, "Scale")
    let b = try bias.map { try normalizedParameter(try toCompute($0), normShape, "B") }
    let statsShape = Array(x.shape[..<a]) + [Int](repeating: 1, count: x.rank - a)
    var y = try Tensor(uninitialized: computeType, shape: x.shape)
    var mean = try Tensor(uninitialized: computeType, shape: statsShape)
    var inv = try Tensor(uninitialized: computeType, shape: statsShape)

    func run<T>(_: T.Type, _ kernel: (UnsafePointer<T>, UnsafeMutablePointer<T>, UnsafePointer<T>, UnsafePointer<T>?,
                                       UnsafeMutablePointer<T>, UnsafeMutablePointer<T>) -> Void) {
        xs.withElements(as: T.self) { px in
            s.withElements(as: T.self) { ps in
                y.withMutableElements(as: T.self) { py in
                    mean.withMutableElements(as: T.self) { pm in
                        inv.withMutableElements(as: T.self) { pi in
                            if let b {
                                b.withElements(as: T.self) { pb in
                                    kernel(px.baseAddress!, py.baseAddress!, ps.baseAddress!, pb.baseAddress!, pm.baseAddress!, pi.baseAddress!)
                                }
                            } else {
                                kernel(px.baseAddress!, py.baseAddress!, ps.baseAddress!, nil, pm.baseAddress!, pi.baseAddress!)
                            }
                        }
                    }
                }
            }
        }
    }
    if computeType == .float {
        run(Float.self) { x, y, scale, bias, mean, inv in
            parallelRanges(rows, threads: threads, grain: max(1, 16384 / max(n, 1))) { r in
                layerNorm(x + r.lowerBound * n, y + r.lowerBound * n, rows: r.count, n: n, scale: scale, bias: bias, epsilon: epsilon,
                          mean: mean + r.lowerBound, invStdDev: inv + r.lowerBound)
            }
        }
    } else {
        run(Double.self) { layerNorm($0, $1, rows: rows, n: n, scale: $2, bias: $3, epsilon: Double(epsilon), mean: $4, invStdDev: $5) }
    }
    if half { y = try y.convertedFromFloat32(to: x.dtype) }
    // Mean and InvStdDev have the stash type (float32 unless stash_type says otherwise).
    let statsType = DType(rawValue: Int32(truncatingIfNeeded: stashType)).flatMap { $0.isFloatingPoint ? $0 : nil } ?? .float
    return [y, try cast(mean, to: statsType), try cast(inv, to: statsType)]
}

enum LayerNormOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["LayerNormalization"] = { c in
            let axis = try c.int("axis", default: -1)
            let epsilon = try c.float("epsilon", default: 1e-5)
            let stashType = try c.int("stash_type", default: 1)
            let threads = c.options.resolvedThreads
            return ClosureOperator { inputs in
                try layerNormalization(try inputs.required(0), scale: try inputs.required(1, "Scale"), bias: inputs.optional(2),
                                       axis: axis, epsilon: epsilon, stashType: stashType, threads: threads)
            }
        }
    }
}
