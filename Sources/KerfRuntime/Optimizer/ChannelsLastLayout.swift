import KerfCore
import KerfGraph
import KerfKernels

/// The channels-last operators of a session's private graph (domain "kerf"): the ONNX operator
/// of the same name without the prefix, with its attributes, on NHWC images (X[N, H, W, C]).
enum ChannelsLast {
    static let conv = "NhwcConv"
    static let quantizedConv = "NhwcQuantizedConv"
    static let maxPool = "NhwcMaxPool"
    static let averagePool = "NhwcAveragePool"
    static let globalAveragePool = "NhwcGlobalAveragePool"
    static let batchNormalization = "NhwcBatchNormalization"
    /// Transpose perms from NCHW to NHWC and back.
    static let toLast: [Int64] = [0, 2, 3, 1]
    static let toFirst: [Int64] = [0, 3, 1, 2]

    /// Elementwise operators of one image input (others, if any, are scalars): they run on
    /// NHWC images as they are.
    static let unary: Set<String> = ["Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus",
                                     "Softsign", "Abs", "Neg", "Exp", "Log", "Sqrt", "Erf", "Clip", "Identity"]
    /// Elementwise operators of several inputs: on NHWC images when every input is one (the same
    /// permutation of equal ranks keeps broadcasting unchanged).
    static let variadic: Set<String> = ["Add", "Sub", "Mul", "Div", "Pow", "Sum", "Max", "Min", "Mean"]
    /// The fused int8 elementwise operators (per-tensor parameters) and their image inputs.
    static let quantizedElementwise: [String: [Int]] = ["QuantizedAdd": [0, 3], "QuantizedTable": [0]]
}

extension GraphOptimizer {
    /// Runs 2-D float Convs on constant weights channels-last (and the fused int8
    /// kerf.QuantizedConv), together with the pooling, inference BatchNormalization, elementwise
    /// (float, int8 and per-tensor Quantize/DequantizeLinear) and Concat nodes between them, so that images change layout once at each
    /// end of a run of such nodes instead of twice per Conv (oneDNN's direct convolutions work
    /// on NHWC images).
    ///
    /// Each converted node reads an NHWC twin of its image inputs and writes an NHWC twin of its
    /// output; a Transpose back to NCHW keeps the output's name for every other reader (dead,
    /// and removed, when there is none). A twin is made once per value, by a Transpose, where
    /// no converted node produced it. A 1x1 Conv, which needs no layout change on its own (it
    /// is one GEMM in NCHW), is converted only when its input already has a twin; pooling,
    /// elementwise and Concat nodes likewise. The rewrite is exact: the converted operators
    /// compute the same values in another layout.
    static func useChannelsLast(_ g: Graph) throws {
        guard OneDnnEngine.available else { return }
        let constants = g.constantInitializers()
        let names = NameAllocator(g)
        var twin: [String: String] = [:]  // NCHW value -> its NHWC twin
        var nodes: [Node] = []
        func transposed(_ name: String, _ perm: [Int64], output: String, by node: Node) -> Node {
            Node(name: node.name.isEmpty ? output : "\(node.name)/\(perm == ChannelsLast.toLast ? "to_nhwc" : "to_nchw")",
                 opType: "Transpose", inputs: [name], outputs: [output],
                 attributes: [Attribute(name: "perm", value: .ints(perm)), Attribute(name: FusedAttributes.layoutChange, value: .int(1))])
        }
        func channelsLastInput(_ name: String, of node: Node) -> String {
            if let t = twin[name] { return t }
            let t = names.make(name + "/nhwc")
            nodes.append(transposed(name, ChannelsLast.toLast, output: t, by: node))
            twin[name] = t
            return t
        }
        /// Appends `node` as `opType` in `domain` on twins of the inputs at `imageInputs`.
        func convert(_ node: Node, to opType: String, domain: String = "", imageInputs: [Int], attributes: [Attribute]? = nil) {
            var n = node
            for i in imageInputs where !n.inputs[i].isEmpty { n.inputs[i] = channelsLastInput(n.inputs[i], of: node) }
            let y = node.outputs[0], t = names.make(y + "/nhwc")
            n.opType = opType
            n.domain = domain
            n.outputs = [t]
            if let attributes { n.attributes = attributes }
            nodes.append(n)
            nodes.append(transposed(t, ChannelsLast.toFirst, output: y, by: node))
            twin[y] = t
        }

        /// The channels-last form of `node`: operator, domain, the inputs that are images (read
        /// through twins) and new attributes if they change; nil to keep the node as it is.
        func form(_ node: Node) -> (opType: String, domain: String, images: [Int], attributes: [Attribute]?)? {
            let kerf = FusedQuantizedOps.domain
            guard node.outputs.count == 1 || (node.opType == "MaxPool" && node.outputs.dropFirst().allSatisfy(\.isEmpty)),
                  !node.outputs[0].isEmpty, !node.inputs.isEmpty else { return nil }
            let hasTwin = twin[node.inputs[0]] != nil
            let allTwins = node.inputs.allSatisfy { twin[$0] != nil }
            if node.domain == kerf {
                if let product = try? QuantizedProductNode(node), product.kind == .conv, let w = constants[product.weight], w.rank == 4,
                   hasTwin || w.shape[2] != 1 || w.shape[3] != 1 {
                    return (ChannelsLast.quantizedConv, kerf, [0], nil)
                }
                if node.opType == "QuantizedChannelLookup", hasTwin {
                    return (node.opType, kerf, [0], node.attributes + [Attribute(name: "channels_last", value: .int(1))])
                }
                if let images = ChannelsLast.quantizedElementwise[node.opType],
                   images.allSatisfy({ $0 < node.inputs.count && twin[node.inputs[$0]] != nil }) {
                    return (node.opType, kerf, images, nil)
                }
                return nil
            }
            guard node.isDefaultDomain else { return nil }
            switch node.opType {
            case "Conv":
                guard node.inputs.count >= 2, let w = constants[node.inputs[1]], w.dtype == .float, w.rank == 4 else { return nil }
                let residual = node.attribute(FusedAttributes.residual) != nil && node.inputs.count > 3 ? node.inputs[3] : nil
                let pointwise = w.shape[2] == 1 && w.shape[3] == 1
                // A residual without a twin could have any rank: such a Conv stays as it is.
                guard !pointwise || hasTwin, residual.map({ twin[$0] != nil }) ?? true else { return nil }
                return (ChannelsLast.conv, kerf, residual == nil ? [0] : [0, 3], nil)
            case "MaxPool", "AveragePool":
                guard hasTwin, case .ints(let k)? = node.attribute("kernel_shape"), k.count == 2 else { return nil }
                return (node.opType == "MaxPool" ? ChannelsLast.maxPool : ChannelsLast.averagePool, kerf, [0], nil)
            case "BatchNormalization":
                // Inference only (one output): a scale and shift per channel.
                if case .int(let t)? = node.attribute("training_mode"), t != 0 { return nil }
                return hasTwin && node.inputs.count == 5 ? (ChannelsLast.batchNormalization, kerf, [0], nil) : nil
            case "GlobalAveragePool":
                return hasTwin ? (ChannelsLast.globalAveragePool, kerf, [0], nil) : nil
            case "QuantizeLinear", "DequantizeLinear":
                // Per-tensor only: a per-axis scale names an NCHW axis.
                guard hasTwin, node.inputs.count >= 2, constants[node.inputs[1]]?.count == 1,
                      node.inputs.count < 3 || node.inputs[2].isEmpty || constants[node.inputs[2]]?.count == 1 else { return nil }
                return (node.opType, "", [0], nil)
            case let op where ChannelsLast.unary.contains(op):
                return hasTwin ? (op, "", [0], nil) : nil
            case let op where ChannelsLast.variadic.contains(op):
                return allTwins ? (op, "", Array(node.inputs.indices), nil) : nil
            case "Concat":
                guard allTwins, case .int(let axis)? = node.attribute("axis"), (-4..<4).contains(axis) else { return nil }
                // NCHW axis a is NHWC axis toLast.firstIndex(of: a).
                let moved = Int64(ChannelsLast.toLast.firstIndex(of: axis < 0 ? axis + 4 : axis)!)
                return ("Concat", "", Array(node.inputs.indices),
                        node.attributes.map { $0.name == "axis" ? Attribute(name: "axis", value: .int(moved)) : $0 })
            default:
                return nil
            }
        }

        for node in try g.topologicalOrder() {
            if let f = form(node) {
                convert(node, to: f.opType, domain: f.domain, imageInputs: f.images, attributes: f.attributes)
            } else {
                nodes.append(node)
            }
        }
        g.nodes = nodes
    }
}
