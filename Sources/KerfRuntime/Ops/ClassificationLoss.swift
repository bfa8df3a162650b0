import KerfCore
import KerfKernels

// NegativeLogLikelihoodLoss (opset 12, 13, 22) and SoftmaxCrossEntropyLoss (opset 12, 13):
// scores [N, C, d1...dk], labels [N, d1...dk] (int32/int64), optional weight [C].
// SoftmaxCrossEntropyLoss is NegativeLogLikelihoodLoss of the log-softmax over axis 1, which it
// returns as a second output when asked.

/// How the per-sample losses become the output.
enum LossReduction: String {
    /// The per-sample losses, of the labels' shape.
    case none
    /// Their sum, a scalar.
    case sum
    /// Their weighted mean Σ loss / Σ w (w the sample weights), a scalar.
    case mean

    init(attribute: String, op: String) throws {
        guard let r = LossReduction(rawValue: attribute) else {
            throw KerfError.invalidModel("\(op) reduction must be none, sum or mean, got '\(attribute)'")
        }
        self = r
    }
}

/// Per-sample negative log likelihoods over logProb viewed as [n, c, d] (row-major), labels
/// [n, d]: loss[i, j] = -logProb[i, label, j] * w and sampleWeight[i, j] = w, where w =
/// weight[label] (1 without `weight`), and both 0 where label == ignoreIndex. Returns the
/// flat index of the first label outside [0, c) that is not ignored (nothing written past
/// it), or nil when every label is valid.
func negativeLogLikelihood<T: BinaryFloatingPoint>(logProb: UnsafePointer<T>, labels: UnsafePointer<Int>, weight: UnsafePointer<T>?,
                                                   n: Int, c: Int, d: Int, ignoreIndex: Int?,
                                                   loss: UnsafeMutablePointer<T>, sampleWeight: UnsafeMutablePointer<T>) -> Int? {
    for i in 0..<n {
        for j in 0..<d {
            let s = i * d + j, label = labels[s]
            if label == ignoreIndex {
                loss[s] = 0
                sampleWeight[s] = 0
                continue
            }
            guard label >= 0, label < c else { return s }
            let w = weight?[label] ?? 1
            loss[s] = -logProb[(i * c + label) * d + j] * w
            sampleWeight[s] = w
        }
    }
    return nil
}

/// NegativeLogLikelihoodLoss of `logProb` (float32 or double, rank >= 2) against `labels`.
/// Throws for a label outside [0, C) other than `ignoreIndex`, and for mismatched shapes.
func negativeLogLikelihoodLoss(_ logProb: Tensor, labels: Tensor, weight: Tensor?, reduction: LossReduction,
                               ignoreIndex: Int?, op: String = "NegativeLogLikelihoodLoss") throws -> Tensor {
    guard logProb.rank >= 2 else { throw KerfError.shapeMismatch("\(op) needs an input of rank >= 2, got \(logProb.shape)") }
    let n = logProb.shape[0], c = logProb.shape[1], d = logProb.shape[2...].reduce(1, *)
    let labelShape = [n] + logProb.shape[2...]
    guard labels.shape == labelShape else {
        throw KerfError.shapeMismatch("\(op) labels must have shape \(labelShape) for input \(logProb.shape), got \(labels.shape)")
    }
    if let weight, weight.shape != [c] || weight.dtype != logProb.dtype {
        throw KerfError.shapeMismatch("\(op) weight must be \(logProb.dtype)[\(c)], got \(weight.dtype)\(weight.shape)")
    }
    let labelValues = try intValues(labels, "\(op) labels")
    struct Body: FloatBody {
        let logProb: Tensor, labels: [Int], weight: Tensor?, n: Int, c: Int, d: Int, ignoreIndex: Int?
        let reduction: LossReduction, labelShape: [Int], op: String
        func run<T: NumericElement & BinaryFloatingPoint>(_: T.Type) throws -> Tensor {
            var losses = [T](repeating: 0, count: n * d), weights = losses
            let classWeights = weight?.array(of: T.self)
            // Empty buffers may have no base address: no samples, or no classes (every label invalid
            // unless ignored), are settled without the kernel.
            let bad = n * d == 0 ? nil : c == 0 ? labels.firstIndex { $0 != ignoreIndex } : logProb.withElements(as: T.self) { x in
                labels.withUnsafeBufferPointer { l in
                    losses.withUnsafeMutableBufferPointer { loss in
                        weights.withUnsafeMutableBufferPointer { w in
                            (classWeights ?? []).withUnsafeBufferPointer { cw in
                                negativeLogLikelihood(logProb: x.baseAddress!, labels: l.baseAddress!, weight: classWeights == nil ? nil : cw.baseAddress,
                                                      n: n, c: c, d: d, ignoreIndex: ignoreIndex, loss: loss.baseAddress!, sampleWeight: w.baseAddress!)
                            }
                        }
                    }
                }
            }
            if let bad {
                throw KerfError.invalidArgument("\(op) label \(labels[bad]) at index \(bad) is outside [0, \(c))")
            }
            switch reduction {
            case .none: return Tensor(shape: labelShape, values: losses)
            case .sum: return Tensor(scalar: T(losses.reduce(0.0) { $0 + Double($1) }))
            case .mean:
                let total = losses.reduce(0.0) { $0 + Double($1) }, weightSum = weights.reduce(0.0) { $0 + Double($1) }
                return Tensor(scalar: T(total / weightSum))
            }
        }
    }
    let body = Body(logProb: logProb, labels: labelValues, weight: weight, n: n, c: c, d: d, ignoreIndex: ignoreIndex,
                    reduction: reduction, labelShape: labelShape, op: op)
    return try dispatchFloat(logProb.dtype, op, body)
}

/// log-softmax of float32 `x` (rank >= 2) over axis 1.
func logSoftmaxOverClasses(_ x: Tensor) throws -> Tensor {
    let x = try float32Input(x, "SoftmaxCrossEntropyLoss")
    let out = try Tensor(uninitialized: .float, shape: x.shape)
    softmax(x.storage.pointer.assumingMemoryBound(to: Float.self), out.storage.pointer.assumingMemoryBound(to: Float.self),
            outer: x.shape[0], n: x.shape[1], inner: x.shape[2...].reduce(1, *), log: true)
    return out
}

enum ClassificationLossOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["NegativeLogLikelihoodLoss"] = { c in
            let reduction = try LossReduction(attribute: c.string("reduction", default: "mean"), op: "NegativeLogLikelihoodLoss")
            let ignoreIndex = try c.int("ignore_index")
            return ClosureOperator { inputs in
                try withFloat32(inputs) { ins in
                    [try negativeLogLikelihoodLoss(try ins.required(0), labels: try ins.required(1, "target"),
                                                   weight: ins.optional(2), reduction: reduction, ignoreIndex: ignoreIndex)]
                }
            }
        }
        r["SoftmaxCrossEntropyLoss"] = { c in
            let reduction = try LossReduction(attribute: c.string("reduction", default: "mean"), op: "SoftmaxCrossEntropyLoss")
            let ignoreIndex = try c.int("ignore_index")
            let wantsLogProb = c.node.outputs.count > 1 && !c.node.outputs[1].isEmpty
            return ClosureOperator { inputs in
                try withFloat32(inputs) { ins in
                    let scores = try ins.required(0)
                    guard scores.rank >= 2 else {
                        throw KerfError.shapeMismatch("SoftmaxCrossEntropyLoss needs scores of rank >= 2, got \(scores.shape)")
                    }
                    let logProb = try logSoftmaxOverClasses(scores)
                    let loss = try negativeLogLikelihoodLoss(logProb, labels: try ins.required(1, "labels"), weight: ins.optional(2),
                                                             reduction: reduction, ignoreIndex: ignoreIndex, op: "SoftmaxCrossEntropyLoss")
                    return wantsLogProb ? [loss, logProb] : [loss]
                }
            }
        }
    }
}
