import KerfCore

/// Writes a loss into a graph as ONNX nodes: each term reduced to a scalar, weighted and
/// summed. Autodiff then differentiates through them like any other node.
enum LossNodes {
    /// The name of the scalar loss value. `softLabels`: cross-entropy targets that are class
    /// probabilities (a float feed) rather than class indices.
    static func append(_ loss: Loss, softLabels: Set<String>, emitter e: NodeEmitter) throws -> String {
        var parts: [String] = []
        for (weight, term) in loss.terms {
            let value = try termValue(term, reduction: loss.reduction, softLabels: softLabels, e)
            parts.append(weight == 1 ? value : e.mul(value, e.scalar(weight, e.dtype(of: term.output)), hint: "loss_weighted"))
        }
        return parts.count == 1 ? e.emit1("Identity", parts, hint: "loss") : e.emit1("Sum", parts, hint: "loss")
    }

    private static func termValue(_ term: Loss.Term, reduction: Loss.Reduction, softLabels: Set<String>, _ e: NodeEmitter) throws -> String {
        let reduce = { (x: String) -> String in
            e.emit1(reduction == .mean ? "ReduceMean" : "ReduceSum", [x], [Attribute(name: "keepdims", value: .int(0))], hint: "loss_term")
        }
        switch term {
        case .crossEntropy(let output, let labels, let fromProbabilities, let smoothing):
            return reduce(try crossEntropyPerSample(output: output, labels: labels, fromProbabilities: fromProbabilities,
                                                    smoothing: smoothing, soft: softLabels.contains(labels), e))
        case .meanSquaredError(let output, let target):
            let d = e.emit1("Sub", [output, target], hint: "mse_diff")
            return reduce(e.mul(d, d, hint: "mse_sq"))
        case .l1(let output, let target):
            return reduce(e.emit1("Abs", [e.emit1("Sub", [output, target], hint: "l1_diff")], hint: "l1_abs"))
        case .huber(let output, let target, let delta):
            let dtype = e.dtype(of: output)
            let d = e.emit1("Sub", [output, target], hint: "huber_diff")
            let a = e.emit1("Abs", [d], hint: "huber_abs")
            let quadratic = e.mul(e.mul(d, d, hint: "huber_sq"), e.scalar(0.5, dtype), hint: "huber_quad")
            let shifted = e.emit1("Sub", [a, e.scalar(0.5 * delta, dtype)], hint: "huber_shift")
            let linear = e.mul(shifted, e.scalar(delta, dtype), hint: "huber_lin")
            let small = e.emit1("Less", [a, e.scalar(delta, dtype)], hint: "huber_small")
            return reduce(e.emit1("Where", [small, quadratic, linear], hint: "huber"))
        case .distillation(let output, let teacher, let temperature):
            return reduce(try distillationPerSample(output: output, teacher: teacher, temperature: temperature, axis: 1, e))
        case .attentionDistillation(let output, let teacher):
            return reduce(try distillationPerSample(output: output, teacher: teacher, temperature: 1, axis: -1, e))
        case .cosineDistance(let output, let target):
            let dtype = e.dtype(of: output)
            let axis = [-1]
            let dot = e.reduceSum(e.mul(output, target, hint: "cos_st"), axes: axis, keepDims: false, hint: "cos_dot")
            func norm(_ x: String, _ hint: String) -> String {
                let squares = e.reduceSum(e.mul(x, x, hint: hint + "_sq"), axes: axis, keepDims: false, hint: hint + "_sumsq")
                // sqrt(Σx² + eps²): torch's max(‖x‖, eps) wherever ‖x‖ ≫ eps, and differentiable at 0.
                return e.emit1("Sqrt", [e.emit1("Add", [squares, e.scalar(1e-16, dtype)], hint: hint + "_eps")], hint: hint)
            }
            let cosine = e.emit1("Div", [dot, e.mul(norm(output, "cos_ns"), norm(target, "cos_nt"), hint: "cos_norms")], hint: "cos")
            return reduce(e.emit1("Sub", [e.scalar(1, dtype), cosine], hint: "cos_distance"))
        case .binaryCrossEntropyWithLogits(let output, let target):
            // (1 − t)·x + softplus(−x): its derivative is exactly sigmoid(x) − t.
            let dtype = e.dtype(of: output)
            let oneMinusT = e.emit1("Sub", [e.scalar(1, dtype), target], hint: "bce_1mt")
            let linear = e.mul(oneMinusT, output, hint: "bce_lin")
            let soft = e.emit1("Softplus", [e.neg(output, hint: "bce_negx")], hint: "bce_softplus")
            return reduce(e.emit1("Add", [linear, soft], hint: "bce"))
        }
    }

    /// T²·Σ_c p_c·(log p_c − log q_c) per sample, p = softmax(teacher/T), q = softmax(output/T)
    /// over `axis` (the class axis 1, or the last; summed away). The teacher feeds no gradient.
    private static func distillationPerSample(output: String, teacher: String, temperature: Double, axis classAxis: Int,
                                              _ e: NodeEmitter) throws -> String {
        let dtype = e.dtype(of: output)
        if let rank = e.rank(of: output), rank < 2 {
            throw KerfError.invalidArgument("distillation needs outputs of rank >= 2 with classes on axis 1; '\(output)' has rank \(rank)")
        }
        if e.opset < 13, let rank = e.rank(of: output), rank > 2 {
            throw KerfError.unsupported("distillation of outputs of rank \(rank) needs opset 13 or later")
        }
        let axis = [Attribute(name: "axis", value: .int(Int64(classAxis)))]
        let inverseT = e.scalar(1 / temperature, dtype)
        let logQ = e.emit1("LogSoftmax", [temperature == 1 ? output : e.mul(output, inverseT, hint: "kd_s_t")], axis, hint: "kd_logq")
        let logP = e.emit1("LogSoftmax", [temperature == 1 ? teacher : e.mul(teacher, inverseT, hint: "kd_t_t")], axis, hint: "kd_logp")
        let p = e.emit1("Exp", [logP], hint: "kd_p")
        let terms = e.mul(p, e.emit1("Sub", [logP, logQ], hint: "kd_logratio"), hint: "kd_terms")
        let kl = e.reduceSum(terms, axes: [classAxis], keepDims: false, hint: "kd_kl")
        return temperature == 1 ? kl : e.mul(kl, e.scalar(temperature * temperature, dtype), hint: "kd_scaled")
    }

    /// −Σ_c target_c·log p_c per sample (the class axis 1 summed away), with label smoothing ε:
    /// −(1 − ε)·Σ_c target_c·log p_c − ε·mean_c log p_c.
    private static func crossEntropyPerSample(output: String, labels: String, fromProbabilities: Bool, smoothing: Double,
                                              soft: Bool, _ e: NodeEmitter) throws -> String {
        let dtype = e.dtype(of: output)
        if let rank = e.rank(of: output), rank < 2 {
            throw KerfError.invalidArgument("cross-entropy needs an output of rank >= 2 with classes on axis 1; '\(output)' has rank \(rank)")
        }
        if e.opset < 13, let rank = e.rank(of: output), rank > 2, !fromProbabilities {
            throw KerfError.unsupported("cross-entropy from logits of rank \(rank) needs opset 13 or later")
        }
        let logP = fromProbabilities ? e.emit1("Log", [output], hint: "ce_logp")
                                     : e.emit1("LogSoftmax", [output], [Attribute(name: "axis", value: .int(1))], hint: "ce_logp")
        let targets: String
        if soft {
            targets = labels
        } else {
            let depth = e.emit1("Gather", [e.shape(of: output), e.int64s([1])], hint: "ce_classes")
            let offOn = e.constant(dtype == .double ? Tensor(shape: [2], values: [0.0, 1.0]) : Tensor(shape: [2], values: [Float(0), 1]),
                                   hint: "ce_off_on")
            targets = e.emit1("OneHot", [labels, depth, offOn], [Attribute(name: "axis", value: .int(1))], hint: "ce_onehot")
        }
        let picked = e.reduceSum(e.mul(targets, logP, hint: "ce_tlogp"), axes: [1], keepDims: false, hint: "ce_picked")
        var perSample = e.neg(picked, hint: "ce_nll")
        if smoothing > 0 {
            let meanLogP = e.reduceMean(logP, axes: [1], keepDims: false, hint: "ce_mean_logp")
            let kept = e.mul(perSample, e.scalar(1 - smoothing, dtype), hint: "ce_kept")
            let spread = e.mul(meanLogP, e.scalar(-smoothing, dtype), hint: "ce_spread")
            perSample = e.emit1("Add", [kept, spread], hint: "ce_smoothed")
        }
        return perSample
    }
}
