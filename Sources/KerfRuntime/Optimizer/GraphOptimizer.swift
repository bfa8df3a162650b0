import KerfCore
import KerfGraph
import KerfKernels

/// Graph rewrites applied when a session is created with optimization level >= 1. They work on
/// a private copy of the graph and never change what the graph computes (beyond float
/// rounding of folded BatchNorm scales). Each pass is tested by output equality against the
/// unoptimized session.
enum GraphOptimizer {
    /// With `constantInitializers` (IR < 4 models), initializers listed as graph inputs cannot be
    /// overridden, so they are dropped from the private copy's inputs and treated as constants.
    /// Subgraphs (If, Loop, Scan) are left as they are; the values they read by name keep their
    /// names and producers (they count as graph outputs while the passes run).
    static func optimize(_ source: Graph, opsets: [OpsetImport], constantInitializers: Bool = false,
                         options: SessionOptions) throws -> Graph {
        let fixed = constantInitializers ? Set(source.initializers.map(\.name)) : []
        let g = source.copy()
        g.inputs.removeAll { fixed.contains($0.name) }
        let outputCount = g.outputs.count, outputNames = Set(g.outputs.map(\.name))
        g.outputs += g.implicitReads.subtracting(outputNames).sorted().map { ValueInfo(name: $0, type: nil) }
        defer { g.outputs = Array(g.outputs.prefix(outputCount)) }
        let opset = opsets.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 0
        g.removePassThroughNodes()
        g.forwardIdentityOutputs()
        fuseSiLU(g)
        spatialMeansToGlobalAveragePool(g, opsets: opsets)
        fuseDynamicQuantizedMatMul(g)
        fuseStaticQuantizedProducts(g, opset: opset)
        fuseQuantizedElementwise(g)
        fuseQuantizedPassThrough(g, opset: opset)
        try foldConstants(g, opsets: opsets, options: options)
        // After folding: their parameters may be dequantized constants.
        fuseQuantizedChannelLookup(g)
        fuseQuantizedTables(g, opsets: opsets, options: options)
        fuseProductTables(g)
        g.foldBatchNormIntoConv(opset: opset)
        g.fuseDecomposedLayerNorm()
        g.fuseDecomposedGelu()
        fuseScaledMaskedSoftmax(g, opset: opset)
        fuseQuantizedMatMulTail(g)
        passDynamicQuantizationRanges(g)
        fuseQuantizedHeadLayout(g)
        fuseQuantizedMatMulResidual(g)
        fuseMatMulBias(g)
        fuseConvResidual(g)
        fuseActivations(g, opset: opset)
        try useChannelsLast(g)
        g.removeDeadNodes()
        return g
    }

    // MARK: - Passes

    /// Evaluates nodes whose inputs are all constants once, turning their outputs into
    /// initializers. Results above 64 MiB are left to run time.
    static func foldConstants(_ g: Graph, opsets: [OpsetImport], options: SessionOptions) throws {
        var known = g.constantInitializers()
        var kept: [Node] = []
        let order = try g.topologicalOrder()
        for node in order {
            let foldable = node.isDefaultDomain && !node.inputs.isEmpty || node.opType == "Constant"
            guard foldable, !node.hasSubgraph, node.inputs.allSatisfy({ $0.isEmpty || known[$0] != nil }) else {
                kept.append(node)
                continue
            }
            let opset = opsets.first { $0.domain == node.domain || (node.isDefaultDomain && ($0.domain.isEmpty || $0.domain == "ai.onnx")) }?.version ?? 0
            let args = node.inputs.map { $0.isEmpty ? nil : known[$0] }
            let context = OperatorContext(node: node, opset: opset, constantInputs: args, options: options)
            guard let op = try? OperatorRegistry.makeOperator(context), let results = try? op.run(args),
                  results.count >= node.outputs.filter({ !$0.isEmpty }).count,
                  results.allSatisfy({ $0.byteCount <= 64 << 20 }) else {
                kept.append(node)  // errors surface when the session runs, with the usual message
                continue
            }
            for (name, value) in zip(node.outputs, results) where !name.isEmpty {
                known[name] = value
                g.initializers.append(Initializer(name: name, tensor: value))
            }
        }
        g.nodes = kept
    }

    /// MatMul(A, constant float B[K, N]) followed by Add of a constant float bias of N
    /// elements becomes one MatMul that adds the bias (PyTorch exports Linear this way).
    static func fuseMatMulBias(_ g: Graph) {
        let match = Matcher(g), usage = match.usage, c = match.constants, producer = match.producer
        var patch = GraphPatch()
        for (ai, add) in g.nodes.enumerated() where add.isDefaultDomain && add.opType == "Add" && add.inputs.count == 2 {
            for (x, biasName) in [(add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])] {
                guard let mi = producer[x], !patch.touches(mi), usage.isPrivate(x) else { continue }
                var mm = g.nodes[mi]
                guard mm.isDefaultDomain, mm.opType == "MatMul", mm.inputs.count == 2, let b = c[mm.inputs[1]], b.dtype == .float, b.rank == 2,
                      let bias = c[biasName], bias.dtype == .float, bias.count == b.shape[1], bias.shape.last == b.shape[1] else { continue }
                mm.inputs.append(biasName)
                mm.attributes.append(Attribute(name: FusedAttributes.bias, value: .int(1)))
                mm.outputs = add.outputs
                patch.replace(mi, with: mm)
                patch.remove(ai)
                break
            }
        }
        patch.apply(to: g)
    }

    /// Conv on float32 constant weights followed by Add (or a two-input Sum) of another tensor
    /// (the residual branch of a ResNet block) as its only reader: the Conv adds it in its epilogue, before any
    /// activation fused after it. The Conv checks at run time that the residual has the output's
    /// shape; otherwise it adds with broadcasting, as the Add would.
    static func fuseConvResidual(_ g: Graph) {
        let match = Matcher(g), usage = match.usage, c = match.constants, producer = match.producer
        var patch = GraphPatch()
        for (ai, add) in g.nodes.enumerated() where add.isDefaultDomain && ["Add", "Sum"].contains(add.opType) && add.inputs.count == 2 {
            for (x, residual) in [(add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])] {
                guard x != residual, let ci = producer[x], !patch.touches(ci), usage.isPrivate(x) else { continue }
                var conv = g.nodes[ci]
                guard conv.isDefaultDomain, conv.opType == "Conv", conv.outputs.count == 1,
                      conv.attribute(FusedAttributes.activation) == nil, conv.attribute(FusedAttributes.residual) == nil,
                      conv.inputs.count >= 2, let w = c[conv.inputs[1]], w.dtype == .float, c[residual] == nil else { continue }
                while conv.inputs.count < 3 { conv.inputs.append("") }
                conv.inputs.append(residual)
                conv.attributes.append(Attribute(name: FusedAttributes.residual, value: .int(1)))
                conv.outputs = add.outputs
                patch.replace(ci, with: conv)
                patch.remove(ai)
                break
            }
        }
        patch.apply(to: g)
    }

    /// Conv, Gemm or MatMul on float32 constant weights followed by Relu, LeakyRelu, Clip (with
    /// constant bounds), Sigmoid, Tanh, HardSigmoid, HardSwish or SiLU (`fuseSiLU`) as the only reader: the activation runs as the
    /// product's epilogue.
    static func fuseActivations(_ g: Graph, opset: Int) {
        let match = Matcher(g), usage = match.usage, c = match.constants, producer = match.producer
        var patch = GraphPatch()
        for (ai, act) in g.nodes.enumerated() where !act.inputs.isEmpty {
            guard let activation = activation(of: act, constants: c, opset: opset),
                  let pi = producer[act.inputs[0]], !patch.touches(pi), usage.isPrivate(act.inputs[0]) else { continue }
            var node = g.nodes[pi]
            guard node.isDefaultDomain, ["Conv", "Gemm", "MatMul"].contains(node.opType), node.outputs.count == 1,
                  node.attribute(FusedAttributes.activation) == nil,
                  node.inputs.count >= 2, let w = c[node.inputs[1]], w.dtype == .float else { continue }
            node.attributes += FusedAttributes.attributes(for: activation)
            node.outputs = [act.outputs[0]]
            patch.replace(pi, with: node)
            patch.remove(ai)
        }
        patch.apply(to: g)
    }

    /// Mul(x, Sigmoid(x)) (either operand order), the Sigmoid read by the Mul alone, becomes
    /// kerf.SiLU(x): one pass instead of two, and an activation a product can run in its epilogue.
    static func fuseSiLU(_ g: Graph) {
        let m = Matcher(g)
        var patch = GraphPatch()
        for (si, sigmoid) in g.nodes.enumerated() where sigmoid.isDefaultDomain && sigmoid.opType == "Sigmoid" && sigmoid.inputs.count == 1 {
            let gate = sigmoid.outputs[0], x = sigmoid.inputs[0]
            guard m.readOnly(gate, by: 1),
                  let mi = g.nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Mul" && $0.inputs.count == 2 && $0.inputs.contains(gate) }),
                  m.other(g.nodes[mi], than: gate) == x, !patch.isRemoved(mi) else { continue }
            patch.remove(si)
            patch.replace(mi, with: Node(name: g.nodes[mi].name + "_silu", opType: SiLUOps.opType, domain: FusedQuantizedOps.domain,
                                         inputs: [x], outputs: g.nodes[mi].outputs))
        }
        patch.apply(to: g)
    }

    /// ReduceMean over every spatial axis of an image (rank 4 or more, axes 2 ..< rank, keepdims 1,
    /// float; not a rank-3 LayerNorm's mean over its last axis), as
    /// the dynamo exporter writes a squeeze-excitation's pooling, becomes the GlobalAveragePool
    /// it is: the int8 and channels-last passes know that one.
    static func spatialMeansToGlobalAveragePool(_ g: Graph, opsets: [OpsetImport]) {
        let m = Matcher(g)
        var types: InferredTypes?
        for i in g.nodes.indices where g.nodes[i].isDefaultDomain && g.nodes[i].opType == "ReduceMean" && g.nodes[i].outputs.count == 1 {
            let n = g.nodes[i]
            if case .int(let keep)? = n.attribute("keepdims"), keep == 0 { continue }
            var axes: [Int]
            if case .ints(let a)? = n.attribute("axes") {
                axes = a.map { Int($0) }
            } else if n.inputs.count > 1, let a = m.constants[n.inputs[1]], a.dtype == .int64 {
                axes = a.array(of: Int64.self).map { Int($0) }
            } else {
                continue
            }
            if types == nil { types = g.inferTypes(opsets: opsets) }
            guard let rank = types?.shape(of: n.inputs[0])?.count, rank >= 4,
                  let dtype = types?.dtype(of: n.inputs[0]), [.float, .double, .float16].contains(dtype) else { continue }
            axes = axes.map { $0 < 0 ? $0 + rank : $0 }.sorted()
            guard axes == Array(2..<rank) else { continue }
            g.nodes[i] = Node(name: n.name, opType: "GlobalAveragePool", inputs: [n.inputs[0]], outputs: n.outputs)
        }
    }

    static func activation(of n: Node, constants c: [String: Tensor], opset: Int) -> Activation? {
        if n.domain == FusedQuantizedOps.domain { return n.opType == SiLUOps.opType ? .silu : nil }
        guard n.isDefaultDomain else { return nil }
        switch n.opType {
        case "Relu": return .relu
        case "Sigmoid": return .sigmoid
        case "Tanh": return .tanh
        case "HardSwish": return .hardSwish
        case "HardSigmoid":
            var alpha: Float = 0.2, beta: Float = 0.5
            if case .float(let a)? = n.attribute("alpha") { alpha = a }
            if case .float(let b)? = n.attribute("beta") { beta = b }
            return .hardSigmoid(alpha: alpha, beta: beta)
        case "LeakyRelu":
            if case .float(let a)? = n.attribute("alpha") { return .leakyRelu(alpha: a) }
            return .leakyRelu(alpha: 0.01)
        case "Clip":
            if opset < 11 {
                var lo = -Float.greatestFiniteMagnitude, hi = Float.greatestFiniteMagnitude
                if case .float(let v)? = n.attribute("min") { lo = v }
                if case .float(let v)? = n.attribute("max") { hi = v }
                return .clip(min: lo, max: hi)
            }
            func bound(_ i: Int) -> Float?? {
                guard i < n.inputs.count, !n.inputs[i].isEmpty else { return .some(nil) }
                guard let t = c[n.inputs[i]], t.dtype == .float, t.count == 1 else { return nil }
                return .some(t.array(of: Float.self)[0])
            }
            guard let lo = bound(1), let hi = bound(2) else { return nil }
            return .clip(min: lo ?? -.infinity, max: hi ?? .infinity)
        default:
            return nil
        }
    }
}
