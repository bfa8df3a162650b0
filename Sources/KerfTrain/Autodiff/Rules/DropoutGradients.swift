import KerfCore

/// Training-mode Dropout (`kerf.training.DropoutTraining`, see `rewriteForTraining`):
/// dX = dY·mask / (1 − ratio) by `kerf.training.DropoutGrad(dY, mask, ratio)`. (Inference-mode
/// Dropout passes dY through: ElementwiseGradients.)
enum DropoutGradients {
    static func register(_ r: inout [String: GradientRule]) {
        r["\(NodeEmitter.domain):DropoutTraining"] = { c in
            guard c.node.outputs.count > 1, !c.output(1).isEmpty else {
                throw KerfError.invalidModel("\(c.node.label): DropoutTraining's gradient needs its mask output")
            }
            let attributes = c.node.attributes.filter { $0.name == "ratio" }
            let inputs = [c.dY, c.output(1)] + (c.has(1) ? [c.input(1)] : [])
            return [c.emitter.emit1("DropoutGrad", inputs, attributes, domain: NodeEmitter.domain, hint: c.hint("dX")), nil, nil]
        }
    }
}
