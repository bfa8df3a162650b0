import KerfCore

/// Quantization-aware training's fake quantization (`kerf.training.FakeQuantize`,
/// `FakeQuantizeWeight`; see `QuantizationAwareTraining`), differentiated with the
/// straight-through estimator: an activation's gradient passes where its value lies inside the
/// quantized range and is 0 where the range clips it, by
/// `kerf.training.FakeQuantizeGrad(dY, X, low, high)` with the range the forward used (the
/// updated one in training form); a weight's passes unchanged. The ranges get no gradient.
enum FakeQuantizeGradients {
    static func register(_ r: inout [String: GradientRule]) {
        r["\(NodeEmitter.domain):FakeQuantize"] = { c in
            let attributes = c.node.attributes.filter { ["qmin", "qmax", "dynamic"].contains($0.name) }
            var inputs = [c.dY, c.input(0)]
            if c.has(1) && c.has(2) {
                let training = c.node.outputs.count >= 3 && !c.output(1).isEmpty && !c.output(2).isEmpty
                inputs += training ? [c.output(1), c.output(2)] : [c.input(1), c.input(2)]
            }
            return [c.emitter.emit1("FakeQuantizeGrad", inputs, attributes, domain: NodeEmitter.domain, hint: c.hint("dX")), nil, nil]
        }
        r["\(NodeEmitter.domain):FakeQuantizeWeight"] = { c in [c.dY] }
    }
}
