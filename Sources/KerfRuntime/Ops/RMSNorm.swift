import KerfCore
import KerfKernels

// RMSNormalization (opset 23): Y = X / sqrt(mean(X²) + epsilon) · Scale, the mean taken over the
// dims from `axis` on; Scale broadcasts to those dims. Y has X's shape and dtype. Float and
// double; float16 / bfloat16 computed in float32 (stash_type 1).

/// Float rows are split over up to `threads` threads.
func rmsNormalization(_ x: Tensor, scale: Tensor, axis: Int, epsilon: Float, threads: Int = 1) throws -> Tensor {
    let layout = try NormalizationRows(x, axis: axis, op: "RMSNormalization")
    let (computeType, half, normShape, rows, n, xs) = (layout.computeType, layout.half, layout.normShape, layout.rows, layout.n, layout.xs)
    let s = try normalizedParameter(try cast(scale, to: computeType), normShape, "Scale", op: "RMSNormalization")
    var y = try Tensor(uninitialized: computeType, shape: x.shape)
    if computeType == .float {
        let px = UnsafePointer(xs.storage.pointer.assumingMemoryBound(to: Float.self))
        let ps = UnsafePointer(s.storage.pointer.assumingMemoryBound(to: Float.self))
        y.withMutableElements(as: Float.self) { py in
            let out = py.baseAddress!
            parallelRanges(rows, threads: threads, grain: max(1, 16384 / max(n, 1))) { r in
                rmsNorm(px + r.lowerBound * n, out + r.lowerBound * n, rows: r.count, n: n, scale: ps, epsilon: epsilon)
            }
        }
    } else {
        xs.withElements(as: Double.self) { px in
            s.withElements(as: Double.self) { ps in
                y.withMutableElements(as: Double.self) { py in
                    rmsNorm(px.baseAddress!, py.baseAddress!, rows: rows, n: n, scale: ps.baseAddress!, epsilon: Double(epsilon))
                }
            }
        }
    }
    return half ? try y.convertedFromFloat32(to: x.dtype) : y
}

enum RMSNormOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["RMSNormalization"] = { c in
            let axis = try c.int("axis", default: -1)
            let epsilon = try c.float("epsilon", default: 1e-5)
            let threads = c.options.resolvedThreads
            return ClosureOperator { inputs in
                [try rmsNormalization(try inputs.required(0), scale: try inputs.required(1, "scale"), axis: axis, epsilon: epsilon,
                                      threads: threads)]
            }
        }
    }
}
