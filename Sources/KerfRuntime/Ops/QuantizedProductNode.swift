import KerfCore
import KerfKernels

/// A fused int8 product node as a typed value: what it multiplies and its `QuantizedEpilogue`.
/// The optimizer's fusions read a node into it (`init?(_:)`), change fields and write it back
/// (`node`); the operators read their node through it. Only this file knows where each value
/// sits among the node's inputs and which attributes hold the epilogue.
///
///  kerf.QuantizedMatMul(Xq, x_scale, x_zp, Wq, w_scale, bias_q, bias_scale, y_scale, y_zp,
///      float bias, head shape, residual, LayerNorm scale, LayerNorm bias, table, table x_scale,
///      table x_zp, table k, table shift, table y_scale, table y_zp), attribute transB
///  kerf.QuantizedConv / kerf.NhwcQuantizedConv: the same inputs (the Conv's stages only), Conv's attributes
///  kerf.DynamicQuantizedMatMul(X, Wq, Wzp, Wscale, float bias, x_scale, x_zp, x_range, head
///      shape, residual, LayerNorm scale, LayerNorm bias)
///
/// Absent values are empty inputs (trailing ones left out). Epilogue attributes: the fused
/// activation (`FusedAttributes`), bias_rank, head_perm (213 or 231), kerf.layer_norm_epsilon
/// (marks the LayerNorm), table_channels, table_to, table_rank.
struct QuantizedProductNode {
    enum Kind: Equatable {
        case matMul, conv, channelsLastConv, dynamicMatMul

        init?(opType: String) {
            switch opType {
            case "QuantizedMatMul": self = .matMul
            case "QuantizedConv": self = .conv
            case ChannelsLast.quantizedConv: self = .channelsLastConv
            case "DynamicQuantizedMatMul": self = .dynamicMatMul
            default: return nil
            }
        }

        var opType: String {
            switch self {
            case .matMul: return "QuantizedMatMul"
            case .conv: return "QuantizedConv"
            case .channelsLastConv: return ChannelsLast.quantizedConv
            case .dynamicMatMul: return "DynamicQuantizedMatMul"
            }
        }

        var isConv: Bool { self == .conv || self == .channelsLastConv }
    }

    var name: String
    var kind: Kind
    /// Static products: the 8-bit input (uint8 or int8). The dynamic one: float X, or X already
    /// quantized to uint8 (with `xQuantization`).
    var x: String
    /// X's per-tensor scale and zero point: constants of the static products; run-time values
    /// of the dynamic one (a DynamicQuantizeLinear's outputs, run once for several products).
    var xQuantization: QuantizedEpilogue.Quantization?
    /// Dynamic product, float X: X's range as [low, high], a run-time value (the producer's
    /// second output), saving the pass that measures it.
    var xRange: String?
    /// int8 [K, N] ([N, K] with transB; [M, C/group, k...] for Conv).
    var weight: String
    /// Dynamic product: W's zero point (1 or N int8).
    var weightZero: String?
    /// W's float scale, per tensor or per output channel.
    var weightScale: String
    var epilogue: QuantizedEpilogue
    /// The product's own attributes (transB; Conv's window attributes), none of the epilogue's.
    var attributes: [Attribute]
    var outputs: [String]

    init(name: String, kind: Kind, x: String, xQuantization: QuantizedEpilogue.Quantization?, weight: String, weightZero: String? = nil,
         weightScale: String, epilogue: QuantizedEpilogue = QuantizedEpilogue(), attributes: [Attribute] = [], outputs: [String]) {
        (self.name, self.kind, self.x, self.xQuantization, self.xRange) = (name, kind, x, xQuantization, nil)
        (self.weight, self.weightZero, self.weightScale) = (weight, weightZero, weightScale)
        (self.epilogue, self.attributes, self.outputs) = (epilogue, attributes, outputs)
    }

    /// MatMul's transB attribute.
    var transB: Bool {
        if case .int(let t)? = attributes.first(where: { $0.name == "transB" })?.value { return t != 0 }
        return false
    }

    // MARK: Inputs by role

    private enum Role {
        case x, xScale, xZero, xRange, weight, weightZero, weightScale, integerBias, integerBiasScale, yScale, yZero, floatBias
        case headShape, residual, layerNormScale, layerNormBias
        case table, tableXScale, tableXZero, tableK, tableShift, tableYScale, tableYZero
    }

    /// Where each role sits among the inputs (see the type's comment).
    private static func layout(_ kind: Kind) -> [Role] {
        switch kind {
        case .matMul, .conv, .channelsLastConv:
            return [.x, .xScale, .xZero, .weight, .weightScale, .integerBias, .integerBiasScale, .yScale, .yZero, .floatBias,
                    .headShape, .residual, .layerNormScale, .layerNormBias,
                    .table, .tableXScale, .tableXZero, .tableK, .tableShift, .tableYScale, .tableYZero]
        case .dynamicMatMul:
            return [.x, .weight, .weightZero, .weightScale, .floatBias, .xScale, .xZero, .xRange, .headShape, .residual,
                    .layerNormScale, .layerNormBias]
        }
    }

    private enum AttributeName {
        static let biasRank = "bias_rank", headPerm = "head_perm", layerNormEpsilon = "kerf.layer_norm_epsilon"
        static let tableChannels = "table_channels", tableTo = "table_to", tableRank = "table_rank"
        static let all: Set<String> = [biasRank, headPerm, layerNormEpsilon, tableChannels, tableTo, tableRank,
                                       FusedAttributes.activation, FusedAttributes.alpha, FusedAttributes.minimum, FusedAttributes.maximum,
                                       FusedAttributes.beta]
    }

    // MARK: Reading a node

    /// `node` read as a fused product; nil when it is not one. Throws when it is one but
    /// malformed (a value its stages need is missing, two biases, unknown inputs).
    init?(_ node: Node) throws {
        guard node.domain == FusedQuantizedOps.domain, let kind = Kind(opType: node.opType) else { return nil }
        let layout = Self.layout(kind)
        guard node.inputs.count <= layout.count else {
            throw KerfError.invalidModel("\(node.label) takes at most \(layout.count) inputs, got \(node.inputs.count)")
        }
        var named: [Role: String] = [:]
        for (i, input) in node.inputs.enumerated() where !input.isEmpty { named[layout[i]] = input }
        func required(_ role: Role, _ what: String) throws -> String {
            guard let value = named[role] else { throw KerfError.invalidModel("\(node.label): \(what) must be a constant") }
            return value
        }
        func requiredQuantization(_ scale: Role, _ zero: Role, _ what: String) throws -> QuantizedEpilogue.Quantization {
            .init(scale: try required(scale, "\(what) scale"), zero: try required(zero, "\(what) zero point"))
        }
        func quantization(_ scale: Role, _ zero: Role, _ what: String) throws -> QuantizedEpilogue.Quantization? {
            named[scale] != nil || named[zero] != nil ? try requiredQuantization(scale, zero, what) : nil
        }
        name = node.name
        self.kind = kind
        outputs = node.outputs
        attributes = node.attributes.filter { !AttributeName.all.contains($0.name) }
        guard let x = named[.x] else { throw KerfError.invalidModel("\(node.label): X is missing") }
        self.x = x
        weight = try required(.weight, "W")
        if kind == .dynamicMatMul {
            weightZero = try required(.weightZero, "W zero point")
            weightScale = try required(.weightScale, "W scale")
        } else {
            weightZero = nil
            weightScale = try required(.weightScale, "w scale")
        }
        xQuantization = try quantization(.xScale, .xZero, "x")
        if kind != .dynamicMatMul && xQuantization == nil { throw KerfError.invalidModel("\(node.label): x scale must be a constant") }
        xRange = named[.xRange]

        var e = QuantizedEpilogue()
        if let values = named[.integerBias] {
            guard named[.floatBias] == nil else { throw KerfError.invalidModel("\(node.label): an int32 bias and a float bias") }
            e.bias = .integer(values: values, scale: try required(.integerBiasScale, "bias scale"))
        } else if let bias = named[.floatBias] {
            e.bias = .float(bias, rank: try FusedAttributes.int(AttributeName.biasRank, of: node, default: 0))
        }
        e.activation = try FusedAttributes.activation(of: node)
        e.quantization = try quantization(.yScale, .yZero, "y")
        if let shape = named[.headShape] {
            e.heads = .init(shape: shape, keysTransposed: try FusedAttributes.int(AttributeName.headPerm, of: node, default: 213) == 231)
        }
        if let residual = named[.residual] {
            var layerNorm: QuantizedEpilogue.LayerNorm?
            if node.attribute(AttributeName.layerNormEpsilon) != nil {
                layerNorm = .init(scale: try required(.layerNormScale, "LayerNorm scale"), bias: named[.layerNormBias],
                                  epsilon: try FusedAttributes.float(AttributeName.layerNormEpsilon, of: node, default: 1e-5))
            }
            e.residual = .init(value: residual, layerNorm: layerNorm)
        }
        if let bytes = named[.table] {
            let to = try FusedAttributes.int(AttributeName.tableTo, of: node, default: Int(DType.uint8.rawValue))
            guard let type = DType(rawValue: Int32(truncatingIfNeeded: to)), type == .uint8 || type == .int8 else {
                throw KerfError.invalidModel("\(node.label): the table's output type must be uint8 or int8")
            }
            var affine: QuantizedEpilogue.AffineTable?
            if let x = try quantization(.tableXScale, .tableXZero, "X") {
                affine = .init(x: x, k: try required(.tableK, "k"), shift: try required(.tableShift, "shift"),
                               y: try requiredQuantization(.tableYScale, .tableYZero, "Y"))
            }
            e.table = .init(bytes: bytes, perChannel: try FusedAttributes.int(AttributeName.tableChannels, of: node, default: 0) != 0, outputType: type,
                            rank: try FusedAttributes.int(AttributeName.tableRank, of: node, default: 0), affine: affine)
        }
        epilogue = e
    }

    // MARK: Writing a node

    /// The node: inputs in their roles' places, the epilogue's attributes after the product's own.
    var node: Node {
        var named: [Role: String] = [.x: x, .weight: weight, .weightScale: weightScale]
        named[.weightZero] = weightZero
        named[.xScale] = xQuantization?.scale
        named[.xZero] = xQuantization?.zero
        named[.xRange] = xRange
        var extra: [Attribute] = FusedAttributes.attributes(for: epilogue.activation)
        switch epilogue.bias {
        case .integer(let values, let scale)?:
            (named[.integerBias], named[.integerBiasScale]) = (values, scale)
        case .float(let bias, let rank)?:
            named[.floatBias] = bias
            if rank > 1 { extra.append(Attribute(name: AttributeName.biasRank, value: .int(Int64(rank)))) }
        case nil: break
        }
        named[.yScale] = epilogue.quantization?.scale
        named[.yZero] = epilogue.quantization?.zero
        if let heads = epilogue.heads {
            named[.headShape] = heads.shape
            extra.append(Attribute(name: AttributeName.headPerm, value: .int(heads.keysTransposed ? 231 : 213)))
        }
        if let residual = epilogue.residual {
            named[.residual] = residual.value
            if let ln = residual.layerNorm {
                (named[.layerNormScale], named[.layerNormBias]) = (ln.scale, ln.bias)
                extra.append(Attribute(name: AttributeName.layerNormEpsilon, value: .float(ln.epsilon)))
            }
        }
        if let table = epilogue.table {
            named[.table] = table.bytes
            if let a = table.affine {
                (named[.tableXScale], named[.tableXZero], named[.tableK], named[.tableShift]) = (a.x.scale, a.x.zero, a.k, a.shift)
                (named[.tableYScale], named[.tableYZero]) = (a.y.scale, a.y.zero)
            }
            extra += [Attribute(name: AttributeName.tableChannels, value: .int(table.perChannel ? 1 : 0)),
                      Attribute(name: AttributeName.tableTo, value: .int(Int64(table.outputType.rawValue))),
                      Attribute(name: AttributeName.tableRank, value: .int(Int64(table.rank)))]
        }
        let layout = Self.layout(kind)
        precondition(named.keys.allSatisfy(layout.contains), "\(kind.opType) has no place for a value of its epilogue")
        var inputs = layout.map { named[$0] ?? "" }
        while inputs.last?.isEmpty == true { inputs.removeLast() }
        return Node(name: name, opType: kind.opType, domain: FusedQuantizedOps.domain, inputs: inputs, outputs: outputs,
                    attributes: attributes + extra)
    }
}
