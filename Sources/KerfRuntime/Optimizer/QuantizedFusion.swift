import KerfCore
import KerfGraph

/// Rewrites the int8 forms ONNX Runtime's quantizer writes (and Kerf's follows) into the fused
/// operators of Ops/QuantizedFused.swift. Runs before constant folding, which afterwards turns
/// every DequantizeLinear of a constant weight left unfused into a float constant.
extension GraphOptimizer {
    /// DynamicQuantizeLinear(X) -> MatMulInteger(Xq, const Wq, Xzp, const Wzp) -> Cast(to float)
    /// -> Mul(., Mul(Xscale, const Wscale)) [-> Add(., const bias [N])]
    /// becomes kerf.DynamicQuantizedMatMul of X (with the bias), or, where other nodes read Xq
    /// too (Q, K and V of one input), of Xq, Xscale and Xzp after the DynamicQuantizeLinear,
    /// which then runs once for all.
    static func fuseDynamicQuantizedMatMul(_ g: Graph) {
        let m = Matcher(g)
        var patch = GraphPatch()
        for (mi, mm) in g.nodes.enumerated() where mm.isDefaultDomain && mm.opType == "MatMulInteger" && mm.inputs.count == 4 {
            guard let (_, dql) = m.node(mm.inputs[0], "DynamicQuantizeLinear"), dql.outputs.count == 3,
                  mm.inputs[2] == dql.outputs[2],
                  let w = m.constants[mm.inputs[1]], w.dtype == .int8, w.rank == 2,
                  let wZero = m.constants[mm.inputs[3]], wZero.dtype == .int8, wZero.count == 1 || wZero.count == w.shape[1],
                  m.readOnly(mm.outputs[0], by: 1),
                  let ci = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Cast" && $0.inputs.first == mm.outputs[0] }),
                  case .int(1)? = g.nodes[ci].attribute("to"), m.readOnly(g.nodes[ci].outputs[0], by: 1),
                  let mulIndex = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Mul" && $0.inputs.contains(g.nodes[ci].outputs[0]) }),
                  let scaleProduct = m.other(g.nodes[mulIndex], than: g.nodes[ci].outputs[0]),
                  let (si, scaleMul) = m.node(scaleProduct, "Mul"), m.readOnly(scaleProduct, by: 1),
                  let wScaleName = m.other(scaleMul, than: dql.outputs[1]),
                  let wScale = m.constants[wScaleName], wScale.dtype == .float, wScale.count == 1 || wScale.count == w.shape[1]
            else { continue }
            var chain = [mi, ci, mulIndex, si]
            var fused = QuantizedProductNode(name: mm.name + "_int8", kind: .dynamicMatMul, x: dql.inputs[0], xQuantization: nil,
                                             weight: mm.inputs[1], weightZero: mm.inputs[3], weightScale: wScaleName, outputs: [])
            var output = g.nodes[mulIndex].outputs[0]
            if m.readOnly(output, by: 1),
               let ai = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Add" && $0.inputs.contains(output) }),
               let biasName = m.other(g.nodes[ai], than: output), let bias = m.constants[biasName], bias.dtype == .float,
               bias.count == w.shape[1], bias.shape.last == w.shape[1] {
                chain.append(ai)
                fused.epilogue.bias = .float(biasName, rank: 0)
                output = g.nodes[ai].outputs[0]
            }
            guard chain.allSatisfy({ !patch.isRemoved($0) }) else { continue }
            if !m.readOnly(dql.outputs[0], by: 1) {
                fused.x = dql.outputs[0]
                fused.xQuantization = .init(scale: dql.outputs[1], zero: dql.outputs[2])
            }
            fused.outputs = [output]
            patch.remove(contentsOf: chain)
            patch.replace(chain.last!, with: fused.node)
        }
        patch.apply(to: g)
    }

    /// DequantizeLinear(Xq) and DequantizeLinear(const int8 Wq, zero point 0) [and DequantizeLinear(
    /// const int32 bias)] -> Conv | MatMul | Gemm [-> an activation] [-> QuantizeLinear] becomes
    /// kerf.QuantizedConv / kerf.QuantizedMatMul on Xq, requantized when the QuantizeLinear is
    /// there and float otherwise. A MatMul may be followed by Add(const float bias [N]) first; its
    /// output then stays float. Two kinds of Conv stay float islands, DequantizeLinear -> float
    /// Conv (its weight dequantized once) -> QuantizeLinear, exactly the file's meaning: depthwise
    /// convolutions and spatial convolutions of fewer than 32 products per output (an RGB stem), which
    /// oneDNN's float kernels run 2-3x faster than an int8 product can (MobileNetV3-Small,
    /// EfficientNet-B0, ShuffleNetV2, ConvNeXt).
    static func fuseStaticQuantizedProducts(_ g: Graph, opset: Int) {
        let m = Matcher(g)
        var patch = GraphPatch()
        for (pi, product) in g.nodes.enumerated() where product.isDefaultDomain && ["Conv", "MatMul", "Gemm"].contains(product.opType) {
            guard product.inputs.count >= 2, product.outputs.count == 1,
                  let x = quantizedInput(m, product.inputs[0]),
                  let (_, dqw) = m.node(product.inputs[1], "DequantizeLinear"),
                  let w = m.constants[dqw.inputs[0]], w.dtype == .int8,
                  let wScale = m.constants[dqw.inputs.count > 1 ? dqw.inputs[1] : ""], wScale.dtype == .float
            else { continue }
            if dqw.inputs.count > 2, !dqw.inputs[2].isEmpty {
                guard let zero = m.constants[dqw.inputs[2]], zero.array(of: Int8.self).allSatisfy({ $0 == 0 }) else { continue }
            }
            var attributes = product.attributes
            // The axis of the weight's output channels, for per-channel scales.
            var channelAxis = 0
            switch product.opType {
            case "Conv":
                guard w.rank >= 3, !staysFloat(conv: product, weightShape: w.shape) else { continue }
            case "MatMul":
                guard w.rank == 2 else { continue }
                channelAxis = 1
            default:  // Gemm: A not transposed, alpha = beta = 1
                guard w.rank == 2, (try? gemmIsPlain(product)) == true else { continue }
                var transB = 0
                if case .int(let t)? = product.attribute("transB") { transB = Int(t) }
                channelAxis = transB == 0 ? 1 : 0
                attributes = [Attribute(name: "transB", value: .int(Int64(transB)))]
            }
            if wScale.count > 1 {
                var axis = 1
                if case .int(let a)? = dqw.attribute("axis") { axis = Int(a) }
                if axis < 0 { axis += w.rank }
                guard axis == channelAxis, wScale.count == w.shape[channelAxis] else { continue }
            }
            var fused = QuantizedProductNode(name: product.name + "_int8", kind: product.opType == "Conv" ? .conv : .matMul, x: x.q,
                                             xQuantization: .init(scale: x.scale, zero: x.zero), weight: dqw.inputs[0],
                                             weightScale: dqw.inputs[1], attributes: attributes, outputs: [])
            var chain = [pi]
            if product.inputs.count > 2, !product.inputs[2].isEmpty {
                guard let (_, dqb) = m.node(product.inputs[2], "DequantizeLinear"), let bias = m.constants[dqb.inputs[0]],
                      bias.dtype == .int32, dqb.inputs.count > 1, m.constants[dqb.inputs[1]] != nil else { continue }
                if dqb.inputs.count > 2, !dqb.inputs[2].isEmpty {
                    guard let zero = m.constants[dqb.inputs[2]], zero.array(of: Int32.self).allSatisfy({ $0 == 0 }) else { continue }
                }
                let n = w.shape[channelAxis]
                guard bias.count == n || (product.opType != "Conv" && bias.count == 1) else { continue }
                fused.epilogue.bias = .integer(values: dqb.inputs[0], scale: dqb.inputs[1])
            }
            var output = product.outputs[0]
            // A float bias added to a MatMul's product (as Kerf's own static files write it).
            if product.opType == "MatMul", fused.epilogue.bias == nil, m.readOnly(output, by: 1),
               let ai = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Add" && $0.inputs.contains(output) }),
               let name = m.other(g.nodes[ai], than: output), let bias = m.constants[name], bias.dtype == .float,
               bias.shape.last == w.shape[1], bias.shape.dropLast().allSatisfy({ $0 == 1 }) {
                chain.append(ai)
                // A bias [1, ..., N] (scikit-learn's) widens a product of lower rank.
                fused.epilogue.bias = .float(name, rank: bias.rank > 1 ? bias.rank : 0)
                output = g.nodes[ai].outputs[0]
            }
            // Relu and Clip fold into the requantization's bounds; other activations (HardSwish,
            // Sigmoid, ...) run on the float result, which is then quantized.
            if m.readOnly(output, by: 1),
               let ai = g.nodes.firstIndex(where: { $0.inputs.first == output }),
               let activation = activation(of: g.nodes[ai], constants: m.constants, opset: opset) {
                chain.append(ai)
                fused.epilogue.activation = activation
                output = g.nodes[ai].outputs[0]
            }
            // (After a float bias, fuseQuantizedMatMulTail quantizes the float result instead.)
            if !fused.epilogue.hasFloatBias, m.readOnly(output, by: 1),
               let qi = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "QuantizeLinear" && $0.inputs.first == output }),
               let y = perTensorParameters(m, g.nodes[qi]), y.type == .uint8 || y.type == .int8 {
                chain.append(qi)
                fused.epilogue.quantization = .init(scale: y.scale, zero: y.zero)
                output = g.nodes[qi].outputs[0]
            }
            guard chain.allSatisfy({ !patch.isRemoved($0) }) else { continue }
            patch.remove(contentsOf: chain)
            fused.outputs = [output]
            patch.replace(chain.last!, with: fused.node)
        }
        patch.apply(to: g)
    }

    /// kerf.QuantizedMatMul or kerf.DynamicQuantizedMatMul with a float output -> Gelu (exact
    /// form, after fuseGelu; or Relu after the dynamic one) [-> QuantizeLinear, per-tensor 8-bit,
    /// QuantizedMatMul only, when it has a float bias (and maybe a Relu or Clip fused with it) or
    /// the Gelu] computes the activation (and the QuantizeLinear) in the product's epilogue,
    /// block by block while the values are in cache, with the same kernels.
    static func fuseQuantizedMatMulTail(_ g: Graph) {
        let m = Matcher(g)
        var patch = GraphPatch()
        for (pi, product) in g.nodes.enumerated() {
            guard let p = fusedMatMul(product) else { continue }
            let dynamic = p.kind == .dynamicMatMul, floatBias = !dynamic && p.epilogue.hasFloatBias
            // An activation fused already (Relu, Clip after a float bias) stays; a QuantizeLinear may follow.
            let activated = p.epilogue.activation != .none
            guard p.epilogue.floatOutput, !activated || floatBias else { continue }
            var fused = p, chain = [pi], output = product.outputs[0]
            if !activated, m.readOnly(output, by: 1),
               let gi = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Gelu" && $0.inputs.first == output }) {
                if case .string(let a)? = g.nodes[gi].attribute("approximate"), String(decoding: a, as: UTF8.self) != "none" { continue }
                chain.append(gi)
                output = g.nodes[gi].outputs[0]
                fused.epilogue.activation = .gelu
            } else if !activated, dynamic, m.readOnly(output, by: 1),
                      let ri = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Relu" && $0.inputs.first == output }) {
                chain.append(ri)
                output = g.nodes[ri].outputs[0]
                fused.epilogue.activation = .relu
            }
            if !dynamic && (floatBias || chain.count > 1), m.readOnly(output, by: 1),
               let qi = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "QuantizeLinear" && $0.inputs.first == output }),
               g.nodes[qi].attribute("output_dtype") == nil, let y = perTensorParameters(m, g.nodes[qi]) {
                chain.append(qi)
                output = g.nodes[qi].outputs[0]
                fused.epilogue.quantization = .init(scale: y.scale, zero: y.zero)
            }
            guard chain.count > 1, chain.allSatisfy({ !patch.isRemoved($0) }) else { continue }
            fused.outputs = [output]
            patch.remove(contentsOf: chain)
            patch.replace(chain.last!, with: fused.node)
        }
        patch.apply(to: g)
    }

    /// kerf.DynamicQuantizedMatMul A whose float output only another one, B, reads with its
    /// own quantization (the FFN's two layers of a dynamic file): A reports the output's range
    /// as a second output, measured block by block while in cache, and B takes it as x_range
    /// instead of reading its input once more to measure it.
    static func passDynamicQuantizationRanges(_ g: Graph) {
        let m = Matcher(g), names = NameAllocator(g)
        for bi in g.nodes.indices {
            guard var b = fusedMatMul(g.nodes[bi]), b.kind == .dynamicMatMul, b.xQuantization == nil, b.xRange == nil,
                  b.epilogue.heads == nil, b.epilogue.residual == nil,
                  m.readOnly(b.x, by: 1), let ai = m.producer[b.x], ai != bi,
                  var a = fusedMatMul(g.nodes[ai]), a.kind == .dynamicMatMul, a.outputs.count == 1 else { continue }
            let range = names.make(a.outputs[0] + "_range")
            a.outputs.append(range)
            b.xRange = range
            g.nodes[ai] = a.node
            g.nodes[bi] = b.node
        }
    }

    /// kerf.QuantizedMatMul / kerf.DynamicQuantizedMatMul with a float output -> Reshape (to
    /// [B, S, H, D], shape computed at run time) -> Transpose(perm 0,2,1,3 or 0,2,3,1): the
    /// product writes its rows straight into the transposed layout (an attention's Q, K and V;
    /// Ops/QuantizedFused.swift), without the Transpose's pass.
    static func fuseQuantizedHeadLayout(_ g: Graph) {
        let m = Matcher(g)
        var patch = GraphPatch()
        for (pi, product) in g.nodes.enumerated() {
            guard var fused = fusedMatMul(product), fused.epilogue.floatOutput, fused.epilogue.heads == nil, product.outputs.count == 1,
                  m.readOnly(product.outputs[0], by: 1),
                  let ri = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Reshape" && $0.inputs.first == product.outputs[0] }),
                  g.nodes[ri].inputs.count == 2, m.readOnly(g.nodes[ri].outputs[0], by: 1) else { continue }
            if case .int(let allowZero)? = g.nodes[ri].attribute("allowzero"), allowZero != 0 { continue }
            guard let ti = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Transpose" && $0.inputs.first == g.nodes[ri].outputs[0] }),
                  case .ints(let perm)? = g.nodes[ti].attribute("perm"), perm == [0, 2, 1, 3] || perm == [0, 2, 3, 1],
                  ![pi, ri, ti].contains(where: patch.isRemoved) else { continue }
            fused.epilogue.heads = .init(shape: g.nodes[ri].inputs[1], keysTransposed: perm == [0, 2, 3, 1])
            fused.outputs = g.nodes[ti].outputs
            patch.remove(contentsOf: [pi, ri, ti])
            patch.replace(ti, with: fused.node)
        }
        patch.apply(to: g)
    }

    /// kerf.QuantizedMatMul / kerf.DynamicQuantizedMatMul with a float output -> Add(residual)
    /// [-> LayerNormalization over the last axis, constant scale and bias]: a transformer's
    /// output projections. The epilogue adds the residual and normalizes each block of rows while
    /// it is in cache (Ops/ProductTail.swift), without the Add's and the LayerNorm's passes.
    static func fuseQuantizedMatMulResidual(_ g: Graph) {
        let m = Matcher(g)
        var patch = GraphPatch()
        for (pi, product) in g.nodes.enumerated() {
            guard var fused = fusedMatMul(product), fused.epilogue.floatOutput, fused.epilogue.heads == nil, fused.epilogue.residual == nil,
                  product.outputs.count == 1, m.readOnly(product.outputs[0], by: 1),
                  let ai = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Add" && $0.inputs.contains(product.outputs[0]) }),
                  let residual = m.other(g.nodes[ai], than: product.outputs[0]), residual != product.outputs[0],
                  m.constants[residual] == nil else { continue }
            var chain = [pi, ai], output = g.nodes[ai].outputs[0]
            fused.epilogue.residual = .init(value: residual, layerNorm: nil)
            if m.readOnly(output, by: 1),
               let li = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "LayerNormalization" && $0.inputs.first == output }) {
                let ln = g.nodes[li]
                var axis: Int64 = -1, stash: Int64 = 1, epsilon: Float = 1e-5
                if case .int(let a)? = ln.attribute("axis") { axis = a }
                if case .int(let t)? = ln.attribute("stash_type") { stash = t }
                if case .float(let e)? = ln.attribute("epsilon") { epsilon = e }
                if axis == -1, stash == 1, ln.inputs.count >= 2, ln.outputs.dropFirst().allSatisfy({ $0.isEmpty }),
                   let w = m.constants[fused.weight], w.rank == 2,
                   let scale = m.constants[ln.inputs[1]], scale.dtype == .float, scale.rank == 1,
                   scale.count == w.shape[fused.transB ? 0 : 1],
                   ln.inputs.count < 3 || ln.inputs[2].isEmpty
                    || (m.constants[ln.inputs[2]].map { $0.dtype == .float && $0.rank == 1 && $0.count == scale.count } ?? false) {
                    let bias = ln.inputs.count > 2 && !ln.inputs[2].isEmpty ? ln.inputs[2] : nil
                    fused.epilogue.residual!.layerNorm = .init(scale: ln.inputs[1], bias: bias, epsilon: epsilon)
                    chain.append(li)
                    output = ln.outputs[0]
                }
            }
            guard !chain.contains(where: patch.isRemoved) else { continue }
            fused.outputs = [output]
            patch.remove(contentsOf: chain)
            patch.replace(chain.last!, with: fused.node)
        }
        patch.apply(to: g)
    }

    /// `n` read as a kerf.QuantizedMatMul or kerf.DynamicQuantizedMatMul, else nil.
    static func fusedMatMul(_ n: Node) -> QuantizedProductNode? {
        guard let p = try? QuantizedProductNode(n), p.kind == .matMul || p.kind == .dynamicMatMul else { return nil }
        return p
    }

    /// Gemm with transA = 0, alpha = beta = 1.
    private static func gemmIsPlain(_ n: Node) throws -> Bool {
        if case .int(let t)? = n.attribute("transA"), t != 0 { return false }
        for name in ["alpha", "beta"] { if case .float(let v)? = n.attribute(name), v != 1 { return false } }
        return true
    }

    /// The per-tensor constant scale and zero point (uint8 / int8) of a QuantizeLinear or
    /// DequantizeLinear node.
    static func perTensorParameters(_ m: Matcher, _ n: Node) -> (scale: String, zero: String, type: DType)? {
        guard n.inputs.count == 3, let s = m.constants[n.inputs[1]], s.dtype == .float, s.count == 1,
              let z = m.constants[n.inputs[2]], z.count == 1, z.dtype == .uint8 || z.dtype == .int8 else { return nil }
        if case .int(let b)? = n.attribute("block_size"), b != 0 { return nil }
        return (n.inputs[1], n.inputs[2], z.dtype)
    }

    /// `value` as DequantizeLinear(q, per-tensor scale, zero point) of a run-time 8-bit tensor.
    /// A depthwise Conv (one input and one output channel per group), or one with a spatial
    /// kernel that sums fewer than 32 products per output.
    private static func staysFloat(conv: Node, weightShape w: [Int]) -> Bool {
        var group = 1
        if case .int(let g)? = conv.attribute("group") { group = Int(g) }
        return (group > 1 && w[0] == group && w[1] == 1) || (w[2...].reduce(1, *) > 1 && w[1...].reduce(1, *) < 32)
    }

    private static func quantizedInput(_ m: Matcher, _ value: String) -> (q: String, scale: String, zero: String)? {
        guard let (_, dq) = m.node(value, "DequantizeLinear"), m.constants[dq.inputs[0]] == nil,
              let p = perTensorParameters(m, dq) else { return nil }
        return (dq.inputs[0], p.scale, p.zero)
    }

    /// DequantizeLinear(A), DequantizeLinear(B) -> Add [-> Relu] -> QuantizeLinear becomes
    /// kerf.QuantizedAdd, and DequantizeLinear -> GlobalAveragePool -> QuantizeLinear becomes
    /// kerf.QuantizedGlobalAveragePool (Ops/QuantizedElementwise.swift): per-tensor parameters,
    /// one 8-bit type throughout, as ONNX Runtime's QLinearAdd / QLinearGlobalAveragePool.
    static func fuseQuantizedElementwise(_ g: Graph) {
        let m = Matcher(g)
        var patch = GraphPatch()
        for (ni, n) in g.nodes.enumerated() where n.isDefaultDomain && (n.opType == "Add" || n.opType == "GlobalAveragePool") {
            let add = n.opType == "Add"
            guard n.inputs.count == (add ? 2 : 1), n.outputs.count == 1 else { continue }
            let operands = n.inputs.compactMap { quantizedInput(m, $0) }
            guard operands.count == n.inputs.count, let type = m.constants[operands[0].zero]?.dtype,
                  operands.allSatisfy({ m.constants[$0.zero]?.dtype == type }) else { continue }
            var chain = [ni], output = n.outputs[0], attributes: [Attribute] = []
            if add, m.readOnly(output, by: 1),
               let ri = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Relu" && $0.inputs.first == output }) {
                chain.append(ri)
                output = g.nodes[ri].outputs[0]
                attributes = FusedAttributes.attributes(for: .relu)
            }
            guard m.readOnly(output, by: 1),
                  let qi = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "QuantizeLinear" && $0.inputs.first == output }),
                  let y = perTensorParameters(m, g.nodes[qi]), y.type == type else { continue }
            chain.append(qi)
            guard chain.allSatisfy({ !patch.isRemoved($0) }) else { continue }
            patch.remove(contentsOf: chain)
            let inputs = operands.flatMap { [$0.q, $0.scale, $0.zero] } + [y.scale, y.zero]
            patch.replace(qi, with: Node(name: n.name + "_int8", opType: add ? "QuantizedAdd" : "QuantizedGlobalAveragePool",
                                    domain: FusedQuantizedOps.domain, inputs: inputs, outputs: [g.nodes[qi].outputs[0]],
                                    attributes: attributes))
        }
        patch.apply(to: g)
    }

    /// DequantizeLinear -> MaxPool | Relu | Reshape | Flatten | Transpose | Squeeze | Unsqueeze ->
    /// QuantizeLinear with the same per-tensor scale and zero point runs on the 8-bit values
    /// directly (the same result: these ops commute with a monotonic per-tensor map; Relu
    /// becomes Clip at the zero point).
    static func fuseQuantizedPassThrough(_ g: Graph, opset: Int) {
        let m = Matcher(g)
        var patch = GraphPatch()
        let ops: Set<String> = ["MaxPool", "Relu", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"]
        // Clip takes its bounds as inputs from opset 11 on.
        for (ni, n) in g.nodes.enumerated() where n.isDefaultDomain && ops.contains(n.opType) && !n.inputs.isEmpty
            && (n.opType != "Relu" || opset >= 11) {
            guard !n.outputs.isEmpty, n.outputs.dropFirst().allSatisfy({ $0.isEmpty }),
                  let x = quantizedInput(m, n.inputs[0]), m.readOnly(n.outputs[0], by: 1),
                  let qi = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "QuantizeLinear" && $0.inputs.first == n.outputs[0] }),
                  let y = perTensorParameters(m, g.nodes[qi]),
                  sameConstant(m, x.scale, y.scale), sameConstant(m, x.zero, y.zero),
                  !patch.isRemoved(qi) else { continue }
            var rewritten = n
            rewritten.inputs[0] = x.q
            rewritten.outputs = [g.nodes[qi].outputs[0]]
            if n.opType == "Relu" {
                rewritten = Node(name: n.name + "_int8", opType: "Clip", inputs: [x.q, x.zero], outputs: rewritten.outputs)
            }
            patch.remove(contentsOf: [ni, qi])
            patch.replace(qi, with: rewritten)
        }
        patch.apply(to: g)
    }

    /// DequantizeLinear(Xq) -> BatchNormalization (inference, constant parameters, which may be
    /// dequantized constants folded: run after constant folding) [-> Relu] -> QuantizeLinear,
    /// per-tensor and 8-bit on both ends (ONNX Runtime's static files of convs whose
    /// BatchNormalization was not folded), becomes kerf.QuantizedChannelLookup: a
    /// 256-entry table per channel that the operator computes with these operators' own kernels,
    /// so results are identical.
    static func fuseQuantizedChannelLookup(_ g: Graph) {
        let m = Matcher(g)
        var patch = GraphPatch()
        for (bi, bn) in g.nodes.enumerated() where bn.isDefaultDomain && bn.opType == "BatchNormalization" {
            if case .int(let t)? = bn.attribute("training_mode"), t != 0 { continue }
            if case .int(let spatial)? = bn.attribute("spatial"), spatial == 0 { continue }  // opset < 9: [C, H, W] parameters
            guard bn.inputs.count == 5, bn.outputs.count == 1,
                  let (di, dq) = m.node(bn.inputs[0], "DequantizeLinear"), dq.attribute("output_dtype") == nil,
                  m.constants[dq.inputs[0]] == nil, let x = perTensorParameters(m, dq), m.readOnly(dq.outputs[0], by: 1),
                  let channels = m.constants[bn.inputs[1]]?.count,
                  bn.inputs[1...].allSatisfy({ m.constants[$0]?.dtype == .float && m.constants[$0]?.count == channels }),
                  m.readOnly(bn.outputs[0], by: 1) else { continue }
            var chain = [di, bi], value = bn.outputs[0], attributes = bn.attributes.filter { $0.name == "epsilon" }
            if let ri = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Relu" && $0.inputs.first == value }) {
                guard m.readOnly(g.nodes[ri].outputs[0], by: 1) else { continue }
                chain.append(ri)
                value = g.nodes[ri].outputs[0]
                attributes += FusedAttributes.attributes(for: .relu)
            }
            guard let qi = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "QuantizeLinear" && $0.inputs.first == value }),
                  g.nodes[qi].attribute("output_dtype") == nil, let y = perTensorParameters(m, g.nodes[qi]) else { continue }
            chain.append(qi)
            guard chain.allSatisfy({ !patch.isRemoved($0) }) else { continue }
            patch.remove(contentsOf: chain)
            patch.replace(qi, with: Node(name: bn.name + "_int8", opType: "QuantizedChannelLookup", domain: FusedQuantizedOps.domain,
                                    inputs: [dq.inputs[0], x.scale, x.zero] + Array(bn.inputs[1...]) + [y.scale, y.zero],
                                    outputs: [g.nodes[qi].outputs[0]], attributes: attributes))
        }
        patch.apply(to: g)
    }

    private static func sameConstant(_ m: Matcher, _ a: String, _ b: String) -> Bool {
        if a == b { return true }
        guard let x = m.constants[a], let y = m.constants[b], x.dtype == y.dtype, x.count == y.count else { return false }
        return x.bytes.elementsEqual(y.bytes)
    }
}
