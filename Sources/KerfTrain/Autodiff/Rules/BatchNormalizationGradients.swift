import KerfCore

/// BatchNormalization in both modes, through `kerf.training` gradient ops (mean and var get no
/// gradient):
/// - inference mode (the running statistics): `BatchNormalizationGrad(dY, X, scale, mean, var)`;
/// - training mode (batch statistics, functions of X): `BatchNormalizationTrainingGrad(dY, X,
///   scale, saved mean, saved inverse std)` for `kerf.training.BatchNormalizationTraining`
///   (see `rewriteForTraining`), or with the statistics recomputed from X for an ONNX node with
///   training_mode = 1.
enum BatchNormalizationGradients {
    static func register(_ r: inout [String: GradientRule]) {
        r["BatchNormalization"] = { c in
            let e = c.emitter
            try onlyY(c)
            if e.opset < 9, let spatial = c.node.attribute("spatial"), case .int(0) = spatial {
                throw KerfError.unsupported("the gradient of BatchNormalization with spatial = 0")
            }
            let mode = try c.int("training_mode", default: 0)
            let training = e.opset >= 14 && mode != 0
            let inputs = training ? [c.dY, c.input(0), c.input(1)] : [c.dY, c.input(0), c.input(1), c.input(3), c.input(4)]
            return try gradients(c, training ? "BatchNormalizationTrainingGrad" : "BatchNormalizationGrad", inputs)
        }
        r["\(NodeEmitter.domain):BatchNormalizationTraining"] = { c in
            try onlyY(c)
            return try gradients(c, "BatchNormalizationTrainingGrad", [c.dY, c.input(0), c.input(1), c.output(1), c.output(2)])
        }
    }

    private static func onlyY(_ c: GradientContext) throws {
        guard c.outputGradients.dropFirst().allSatisfy({ $0 == nil }) else {
            throw KerfError.unsupported("gradients through \(c.node.label)'s statistics outputs")
        }
    }

    private static func gradients(_ c: GradientContext, _ op: String, _ inputs: [String]) throws -> [String?] {
        let attributes = [Attribute(name: "epsilon", value: .float(try c.float("epsilon", default: 1e-5)))]
        let outs = c.emitter.emit(op, inputs, attributes, domain: NodeEmitter.domain, outputs: 3, hint: c.hint("dX"))
        return [c.needs(0) ? outs[0] : nil, c.needs(1) ? outs[1] : nil, c.needs(2) ? outs[2] : nil, nil, nil]
    }
}
