import KerfCore

/// The `kerf.training` domain: operators that backward graphs are made of where no standard
/// ONNX op computes the gradient in one step. A training graph imports the domain at version 1.
enum TrainingOps {
    static let domain = "kerf.training"

    static func register(_ r: inout [String: OperatorFactory]) {
        r["\(domain):SumToShape"] = { c in
            let threads = c.options.resolvedThreads
            return ClosureOperator { inputs in
                let shape = try intValues(try inputs.required(1, "shape"), "SumToShape shape")
                return [try sumToShape(try inputs.required(0), shape: shape, threads: threads)]
            }
        }
        r["\(domain):ActivationGrad"] = { c in
            let kind = try ActivationDerivative(kind: try c.string("kind", default: ""),
                                                alpha: c.has("alpha") ? try c.float("alpha", default: 0) : nil,
                                                beta: c.has("beta") ? try c.float("beta", default: 0) : nil)
            let threads = c.options.resolvedThreads
            return ClosureOperator { inputs in
                [try activationGradient(kind, dY: try inputs.required(0), value: try inputs.required(1),
                                        minimum: inputs.optional(2) ?? nil, maximum: inputs.optional(3) ?? nil, threads: threads)]
            }
        }
        r["\(domain):SoftmaxGrad"] = { c in
            let axis = try c.int("axis", default: -1), log = try c.int("log", default: 0) != 0
            let coerced = try c.int("coerced", default: 0) != 0, threads = c.options.resolvedThreads
            return ClosureOperator { inputs in
                [try softmaxGradient(dY: try inputs.required(0), y: try inputs.required(1), axis: axis, log: log, coerced: coerced,
                                     threads: threads)]
            }
        }
        r["\(domain):LayerNormalizationGrad"] = { c in
            let axis = try c.int("axis", default: -1), epsilon = try c.float("epsilon", default: 1e-5)
            let threads = c.options.resolvedThreads
            return ClosureOperator { inputs in
                try layerNormalizationGradient(dY: try inputs.required(0), x: try inputs.required(1), scale: try inputs.required(2),
                                               axis: axis, epsilon: Double(epsilon), threads: threads)
            }
        }
        r["\(domain):GatherGrad"] = { c in
            let axis = try c.int("axis", default: 0)
            return ClosureOperator { inputs in
                let shape = try intValues(try inputs.required(2, "shape"), "GatherGrad shape")
                return [try gatherGradient(dY: try inputs.required(0), indices: try inputs.required(1), shape: shape, axis: axis)]
            }
        }
        r["\(domain):ConvGradInput"] = { c in try ConvGradOperator(c, target: .input) }
        r["\(domain):ConvGradWeight"] = { c in try ConvGradOperator(c, target: .weight) }
        r["\(domain):MaxPoolGrad"] = { c in try PoolGradOperator(c, kind: .max) }
        r["\(domain):AveragePoolGrad"] = { c in try PoolGradOperator(c, kind: .average) }
        r["\(domain):BatchNormalizationTraining"] = { c in
            let epsilon = decimalDouble(try c.float("epsilon", default: 1e-5)), momentum = decimalDouble(try c.float("momentum", default: 0.9))
            let threads = c.options.resolvedThreads
            return ClosureOperator { inputs in
                try batchNormalizationTraining(try inputs.required(0), scale: try inputs.required(1), bias: try inputs.required(2),
                                               runningMean: try inputs.required(3), runningVar: try inputs.required(4),
                                               epsilon: epsilon, momentum: momentum, threads: threads)
            }
        }
        // Inference mode (dY, X, scale, running mean, running var) and training mode (dY, X,
        // scale, saved mean, saved inverse std; both optional: recomputed from X).
        for (name, training) in [("BatchNormalizationGrad", false), ("BatchNormalizationTrainingGrad", true)] {
            r["\(domain):\(name)"] = { c in
                let epsilon = decimalDouble(try c.float("epsilon", default: 1e-5)), threads = c.options.resolvedThreads
                return ClosureOperator { inputs in
                    let mean = training ? inputs.optional(3) ?? nil : try inputs.required(3, "mean")
                    let spread = training ? inputs.optional(4) ?? nil : try inputs.required(4, "var")
                    return try batchNormalizationGradient(dY: try inputs.required(0), x: try inputs.required(1), scale: try inputs.required(2),
                                                          mean: mean, spread: spread, spreadIsInvStd: training, batchStatistics: training,
                                                          epsilon: epsilon, threads: threads)
                }
            }
        }
        r["\(domain):DropoutTraining"] = { c in
            let stream = UInt64(bitPattern: Int64(try c.int("seed", default: 0)))
            let ratio = decimalDouble(try c.float("ratio", default: 0.5)), threads = c.options.resolvedThreads
            return ClosureOperator { inputs in
                try dropoutTraining(try inputs.required(0), ratio: try dropoutRatio(inputs.optional(1) ?? nil, attribute: ratio),
                                    seed: try dropoutSeed(inputs.optional(2) ?? nil), stream: stream, threads: threads)
            }
        }
        r["\(domain):DropoutGrad"] = { c in
            let ratio = decimalDouble(try c.float("ratio", default: 0.5)), threads = c.options.resolvedThreads
            return ClosureOperator { inputs in
                [try dropoutGradient(dY: try inputs.required(0), mask: try inputs.required(1, "mask"),
                                     ratio: try dropoutRatio(inputs.optional(2) ?? nil, attribute: ratio), threads: threads)]
            }
        }
        r["\(domain):FakeQuantize"] = { c in
            let rule = try FakeQuantization(c)
            let momentum: Float? = c.node.outputs.count >= 3 ? try c.float("momentum", default: 0.99) : nil
            if let m = momentum, !(m >= 0 && m <= 1) { throw KerfError.invalidModel("\(c.node.label): momentum \(m) is not in [0, 1]") }
            return ClosureOperator { inputs in
                try fakeQuantizeActivation(try inputs.required(0), low: inputs.optional(1) ?? nil, high: inputs.optional(2) ?? nil,
                                           rule: rule, momentum: momentum)
            }
        }
        r["\(domain):FakeQuantizeGrad"] = { c in
            let rule = try FakeQuantization(c)
            return ClosureOperator { inputs in
                [try fakeQuantizeGradient(dY: try inputs.required(0), x: try inputs.required(1), low: inputs.optional(2) ?? nil,
                                          high: inputs.optional(3) ?? nil, rule: rule)]
            }
        }
        r["\(domain):FakeQuantizeWeight"] = { c in
            let axis = try c.int("axis")
            return ClosureOperator { inputs in [try fakeQuantizeWeight(try inputs.required(0), axis: axis)] }
        }
        r["\(domain):SliceGrad"] = { c in
            let attrStarts = try c.ints("starts"), attrEnds = try c.ints("ends"), attrAxes = try c.ints("axes")
            return ClosureOperator { inputs in
                let shape = try intValues(try inputs.required(1, "shape"), "SliceGrad shape")
                let starts = try attrStarts ?? intValues(try inputs.required(2, "starts"), "Slice starts")
                let ends = try attrEnds ?? intValues(try inputs.required(3, "ends"), "Slice ends")
                let axes = try attrAxes ?? (inputs.optional(4) ?? nil).map { try intValues($0, "Slice axes") }
                let steps = try (inputs.optional(5) ?? nil).map { try intValues($0, "Slice steps") }
                let geometry = try SliceGeometry(shape: shape, starts: starts, ends: ends, axes: axes, steps: steps)
                return [try sliceGradient(dY: try inputs.required(0), shape: shape, geometry: geometry)]
            }
        }
    }
}

/// The floating-point element types gradients are computed in.
protocol GradientElement: BinaryFloatingPoint, TensorElement {}
extension Float: GradientElement {}
extension Double: GradientElement {}

/// Checks that `t` holds float or double elements, for the gradient op `op`.
func requireGradientElement(_ t: Tensor, _ op: String) throws {
    guard t.dtype == .float || t.dtype == .double else {
        throw KerfError.unsupported("\(op) of \(t.dtype) (float and double only)")
    }
}
