import KerfCore

/// Conv (any number of spatial dims, groups, strides, pads, auto_pad, dilations, bias):
/// `kerf.training.ConvGradInput` for X, `ConvGradWeight` for W (with B's gradient as its second
/// output when both are needed), each with the forward node's window attributes.
enum ConvolutionGradients {
    /// The forward attributes the gradient ops read.
    static let windowAttributes: Set<String> = ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"]

    static func register(_ r: inout [String: GradientRule]) {
        r["Conv"] = { c in try conv(c) }
    }

    private static func conv(_ c: GradientContext) throws -> [String?] {
        let e = c.emitter
        let attributes = c.node.attributes.filter { windowAttributes.contains($0.name) }
        let needsBias = c.has(2) && c.needs(2)
        var dX: String?, dW: String?, dB: String?
        if c.needs(0) {
            dX = e.emit1("ConvGradInput", [c.dY, c.input(1), e.shape(of: c.input(0))], attributes, domain: NodeEmitter.domain,
                         hint: c.hint("dX"))
        }
        if c.needs(1) {
            let outs = e.emit("ConvGradWeight", [c.dY, c.input(0), e.shape(of: c.input(1))], attributes, domain: NodeEmitter.domain,
                              outputs: needsBias ? 2 : 1, hint: c.hint("dW"))
            dW = outs[0]
            if needsBias { dB = outs[1] }
        } else if needsBias {
            let rank = try e.requireRank(of: c.input(0), for: c.node)
            dB = e.reduceSum(c.dY, axes: [0] + Array(2..<max(2, rank)), keepDims: false, hint: c.hint("dB"))
        }
        return [dX, dW, dB]
    }
}
