import KerfCore
import KerfKernels

/// Graph rewrites applied when a session is created with optimization level >= 1. They work on
/// a private copy of the graph and never change what the graph computes (beyond float
/// rounding of folded BatchNorm scales). Each pass is tested by output equality against the
/// unoptimized session.
enum GraphOptimizer {
    /// With `constantInitializers` (IR < 4 models), initializers listed as graph inputs cannot be
    /// overridden, so they are dropped from the private copy's inputs and treated as constants.
    static func optimize(_ source: Graph, opsets: [OpsetImport], constantInitializers: Bool = false,
                         options: SessionOptions) throws -> Graph {
        let fixed = constantInitializers ? Set(source.initializers.map(\.name)) : []
        let g = Graph(name: source.name, nodes: source.nodes, inputs: source.inputs.filter { !fixed.contains($0.name) },
                      outputs: source.outputs, valueInfo: source.valueInfo, initializers: source.initializers)
        let opset = opsets.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 0
        removePassThroughNodes(g)
        forwardIdentityOutputs(g)
        fuseDynamicQuantizedMatMul(g)
        fuseStaticQuantizedProducts(g, opset: opset)
        fuseQuantizedElementwise(g)
        fuseQuantizedPassThrough(g, opset: opset)
        try foldConstants(g, opsets: opsets, options: options)
        // After folding: their parameters may be dequantized constants.
        fuseQuantizedChannelLookup(g)
        fuseQuantizedTables(g, opsets: opsets, options: options)
        fuseProductTables(g)
        foldBatchNormIntoConv(g, opset: opset)
        fuseLayerNorm(g)
        fuseGelu(g)
        fuseScaledMaskedSoftmax(g, opset: opset)
        fuseQuantizedMatMulTail(g)
        passDynamicQuantizationRanges(g)
        fuseQuantizedHeadLayout(g)
        fuseQuantizedMatMulResidual(g)
        fuseMatMulBias(g)
        fuseConvResidual(g)
        fuseActivations(g, opset: opset)
        try useChannelsLast(g)
        removeDeadNodes(g)
        return g
    }

    // MARK: - Graph queries

    /// How many node inputs read each value, plus the graph outputs.
    struct Usage {
        var readers: [String: Int] = [:]
        let outputs: Set<String>

        init(_ g: Graph) {
            outputs = Set(g.outputs.map(\.name))
            for n in g.nodes { for i in n.inputs where !i.isEmpty { readers[i, default: 0] += 1 } }
        }

        /// True when exactly one node input reads `name` and it is not a graph output.
        func isPrivate(_ name: String) -> Bool { readers[name] == 1 && !outputs.contains(name) }
    }

    /// Initializers that cannot be overridden by a feed (not also listed as graph inputs).
    static func constants(_ g: Graph) -> [String: Tensor] {
        let fed = Set(g.inputs.map(\.name))
        var c: [String: Tensor] = [:]
        for i in g.initializers where !fed.contains(i.name) { c[i.name] = i.tensor }
        return c
    }

    static func uniqueName(_ base: String, in g: Graph) -> String {
        var taken = Set(g.initializers.map(\.name))
        for n in g.nodes { taken.formUnion(n.outputs) }
        taken.formUnion(g.inputs.map(\.name))
        var name = base, k = 1
        while taken.contains(name) { name = "\(base)_\(k)"; k += 1 }
        return name
    }

    /// Read-only view of a graph for pattern matching: producers, reader counts, constants.
    struct Matcher {
        let g: Graph
        let producer: [String: Int]
        let usage: Usage
        let constants: [String: Tensor]

        init(_ g: Graph) {
            self.g = g
            var p: [String: Int] = [:]
            for (i, n) in g.nodes.enumerated() { for o in n.outputs where !o.isEmpty { p[o] = i } }
            producer = p
            usage = Usage(g)
            constants = GraphOptimizer.constants(g)
        }

        /// The default-domain node of type `op` producing `value`, if any.
        func node(_ value: String, _ op: String) -> (Int, Node)? {
            guard let i = producer[value], g.nodes[i].isDefaultDomain, g.nodes[i].opType == op else { return nil }
            return (i, g.nodes[i])
        }

        /// A float32 scalar constant (one element) named `value`.
        func scalar(_ value: String) -> Float? {
            guard let t = constants[value], t.count == 1 else { return nil }
            switch t.dtype {
            case .float: return t.array(of: Float.self)[0]
            case .double: return Float(t.array(of: Double.self)[0])
            default: return nil
            }
        }

        /// The other input of a binary node, given one of them.
        func other(_ n: Node, than value: String) -> String? {
            guard n.inputs.count == 2 else { return nil }
            if n.inputs[0] == value { return n.inputs[1] }
            if n.inputs[1] == value { return n.inputs[0] }
            return nil
        }

        /// True when `value` is read only by the given number of node inputs and is no graph output.
        func readOnly(_ value: String, by count: Int) -> Bool {
            usage.readers[value] == count && !usage.outputs.contains(value)
        }

        /// ReduceMean over the last axis only, keeping dims (axes as attribute or constant input).
        func isLastAxisMean(_ n: Node) -> Bool {
            if case .int(let k)? = n.attribute("keepdims"), k == 0 { return false }
            var axes: [Int64]? = nil
            if case .ints(let a)? = n.attribute("axes") { axes = a }
            if n.inputs.count > 1, let t = constants[n.inputs[1]], t.dtype == .int64 { axes = t.array(of: Int64.self) }
            return axes == [-1]
        }
    }

    // MARK: - Passes

    /// Identity and inference Dropout forward their input: readers are rewired to it, unless
    /// the node's output is a graph output (names must stay) or Dropout's mask is read.
    static func removePassThroughNodes(_ g: Graph) {
        let usage = Usage(g)
        var rename: [String: String] = [:]
        g.nodes.removeAll { n in
            guard n.isDefaultDomain, n.opType == "Identity" || n.opType == "Dropout", let input = n.inputs.first, !input.isEmpty,
                  let output = n.outputs.first, !usage.outputs.contains(output) else { return false }
            if n.opType == "Dropout" {
                if n.outputs.count > 1 && !n.outputs[1].isEmpty && (usage.readers[n.outputs[1]] ?? 0) > 0 { return false }
                if n.inputs.count > 2 && !n.inputs[2].isEmpty { return false }  // training_mode given at run time
                if case .int(let t)? = n.attribute("training_mode"), t != 0 { return false }
            }
            rename[output] = rename[input] ?? input
            return true
        }
        guard !rename.isEmpty else { return }
        func resolve(_ name: String) -> String {
            var r = name
            while let next = rename[r] { r = next }
            return r
        }
        for i in g.nodes.indices { g.nodes[i].inputs = g.nodes[i].inputs.map { $0.isEmpty ? $0 : resolve($0) } }
    }

    /// An Identity that copies an intermediate value to a graph output is removed: the value's
    /// producer writes the graph output directly and the value's readers read it. Only when the
    /// value is not itself a graph input, output or initializer, and no node has a subgraph
    /// (which could read the value by name).
    static func forwardIdentityOutputs(_ g: Graph) {
        guard !g.nodes.contains(where: { n in n.attributes.contains {
            switch $0.value { case .graph, .graphs: return true; default: return false }
        } }) else {
            return
        }
        let outputs = Set(g.outputs.map(\.name))
        var fixed = Set(g.inputs.map(\.name)).union(g.initializers.map(\.name)).union(outputs)
        var producer: [String: Int] = [:]
        for (i, n) in g.nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
        var removed = Set<Int>()
        for (i, n) in g.nodes.enumerated() {
            guard n.isDefaultDomain, n.opType == "Identity", n.inputs.count == 1, n.outputs.count == 1,
                  outputs.contains(n.outputs[0]), !fixed.contains(n.inputs[0]), let p = producer[n.inputs[0]], !removed.contains(p) else { continue }
            let value = n.inputs[0], output = n.outputs[0]
            g.nodes[p].outputs = g.nodes[p].outputs.map { $0 == value ? output : $0 }
            for k in g.nodes.indices { g.nodes[k].inputs = g.nodes[k].inputs.map { $0 == value ? output : $0 } }
            fixed.insert(value)  // gone: a second Identity of it must not match
            removed.insert(i)
        }
        g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Evaluates nodes whose inputs are all constants once, turning their outputs into
    /// initializers. Results above 64 MiB are left to run time.
    static func foldConstants(_ g: Graph, opsets: [OpsetImport], options: SessionOptions) throws {
        var known = constants(g)
        var kept: [Node] = []
        let order = try Session.topologicalOrder(g)
        for node in order {
            let foldable = node.isDefaultDomain && !node.inputs.isEmpty || node.opType == "Constant"
            guard foldable, node.inputs.allSatisfy({ $0.isEmpty || known[$0] != nil }),
                  !node.attributes.contains(where: { if case .graph = $0.value { return true }; return false }) else {
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

    /// Conv followed by inference BatchNormalization becomes one Conv with scaled weights:
    /// W'[m] = W[m] * s[m], b'[m] = (b[m] - mean[m]) * s[m] + beta[m], s = gamma / sqrt(var + eps).
    /// A weight that only the folded Conv read is dropped at once, so that the graph holds one
    /// copy of each layer's weights at a time, not the old and the new set.
    static func foldBatchNormIntoConv(_ g: Graph, opset: Int) {
        let usage = Usage(g)
        var producer: [String: Int] = [:]
        for (i, n) in g.nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
        var c = constants(g)  // the only other reference to the graph's constants here
        let inputs = Set(g.inputs.map(\.name))
        var removed = Set<Int>()
        for (bi, bn) in g.nodes.enumerated() where bn.isDefaultDomain && bn.opType == "BatchNormalization" {
            guard bn.outputs.filter({ !$0.isEmpty }).count == 1, bn.inputs.count == 5,
                  let ci = producer[bn.inputs[0]], !removed.contains(ci), usage.isPrivate(bn.inputs[0]) else { continue }
            if case .int(let t)? = bn.attribute("training_mode"), t != 0 { continue }
            var conv = g.nodes[ci]
            guard conv.isDefaultDomain, conv.opType == "Conv", conv.attribute(FusedAttributes.activation) == nil,
                  conv.inputs.count >= 2, let w = c[conv.inputs[1]], w.dtype == .float, w.rank >= 3 else { continue }
            let m = w.shape[0]
            let params = bn.inputs[1...].map { c[$0] }
            guard params.allSatisfy({ $0 != nil && $0!.dtype == .float && $0!.count == m }) else { continue }
            let bias = conv.inputs.count > 2 && !conv.inputs[2].isEmpty ? c[conv.inputs[2]] : nil
            if conv.inputs.count > 2 && !conv.inputs[2].isEmpty && (bias == nil || bias!.dtype != .float || bias!.count != m) { continue }
            var epsilon: Float = 1e-5
            if case .float(let e)? = bn.attribute("epsilon") { epsilon = e }
            let gamma = params[0]!.array(of: Float.self), beta = params[1]!.array(of: Float.self)
            let mean = params[2]!.array(of: Float.self), variance = params[3]!.array(of: Float.self)
            let oldBias = bias?.array(of: Float.self) ?? [Float](repeating: 0, count: m)
            let per = w.count / m
            guard var newW = try? Tensor(uninitialized: .float, shape: w.shape) else { continue }  // then runs unfolded
            var newB = [Float](repeating: 0, count: m)
            w.withElements(as: Float.self) { old in
                newW.withMutableElements(as: Float.self) { out in
                    for j in 0..<m {
                        let s = gamma[j] / (variance[j] + epsilon).squareRoot()
                        for k in 0..<per { out[j * per + k] = old[j * per + k] * s }
                        newB[j] = (oldBias[j] - mean[j]) * s + beta[j]
                    }
                }
            }
            let wName = uniqueName(conv.inputs[1] + "_bn_folded", in: g)
            let bName = uniqueName(bn.name.isEmpty ? wName + "_bias" : bn.name + "_folded_bias", in: g)
            g.initializers.append(Initializer(name: wName, tensor: newW))
            g.initializers.append(Initializer(name: bName, tensor: Tensor(shape: [m], values: newB)))
            let oldW = conv.inputs[1]
            if usage.readers[oldW] == 1, !usage.outputs.contains(oldW), !inputs.contains(oldW) {
                c[oldW] = nil
                g.initializers.removeAll { $0.name == oldW }
            }
            conv.inputs = [conv.inputs[0], wName, bName]
            conv.outputs = [bn.outputs[0]]
            g.nodes[ci] = conv
            removed.insert(bi)
        }
        g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// MatMul(A, constant float B[K, N]) followed by Add of a constant float bias of N
    /// elements becomes one MatMul that adds the bias (PyTorch exports Linear this way).
    static func fuseMatMulBias(_ g: Graph) {
        let match = Matcher(g), usage = match.usage, c = match.constants, producer = match.producer
        var removed = Set<Int>()
        for (ai, add) in g.nodes.enumerated() where add.isDefaultDomain && add.opType == "Add" && add.inputs.count == 2 {
            for (x, biasName) in [(add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])] {
                guard let mi = producer[x], !removed.contains(mi), usage.isPrivate(x) else { continue }
                var mm = g.nodes[mi]
                guard mm.isDefaultDomain, mm.opType == "MatMul", mm.inputs.count == 2, let b = c[mm.inputs[1]], b.dtype == .float, b.rank == 2,
                      let bias = c[biasName], bias.dtype == .float, bias.count == b.shape[1], bias.shape.last == b.shape[1] else { continue }
                mm.inputs.append(biasName)
                mm.attributes.append(Attribute(name: FusedAttributes.bias, value: .int(1)))
                mm.outputs = add.outputs
                g.nodes[mi] = mm
                removed.insert(ai)
                break
            }
        }
        g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Conv on float32 constant weights followed by Add (or a two-input Sum) of another tensor
    /// (the residual branch of a ResNet block) as its only reader: the Conv adds it in its epilogue, before any
    /// activation fused after it. The Conv checks at run time that the residual has the output's
    /// shape; otherwise it adds with broadcasting, as the Add would.
    static func fuseConvResidual(_ g: Graph) {
        let match = Matcher(g), usage = match.usage, c = match.constants, producer = match.producer
        var removed = Set<Int>(), fused = Set<Int>()
        for (ai, add) in g.nodes.enumerated() where add.isDefaultDomain && ["Add", "Sum"].contains(add.opType) && add.inputs.count == 2 {
            for (x, residual) in [(add.inputs[0], add.inputs[1]), (add.inputs[1], add.inputs[0])] {
                guard x != residual, let ci = producer[x], !fused.contains(ci), usage.isPrivate(x) else { continue }
                var conv = g.nodes[ci]
                guard conv.isDefaultDomain, conv.opType == "Conv", conv.outputs.count == 1,
                      conv.attribute(FusedAttributes.activation) == nil, conv.attribute(FusedAttributes.residual) == nil,
                      conv.inputs.count >= 2, let w = c[conv.inputs[1]], w.dtype == .float, c[residual] == nil else { continue }
                while conv.inputs.count < 3 { conv.inputs.append("") }
                conv.inputs.append(residual)
                conv.attributes.append(Attribute(name: FusedAttributes.residual, value: .int(1)))
                conv.outputs = add.outputs
                g.nodes[ci] = conv
                fused.insert(ci)
                removed.insert(ai)
                break
            }
        }
        g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    /// Conv, Gemm or MatMul on float32 constant weights followed by Relu, LeakyRelu, Clip (with
    /// constant bounds), Sigmoid or Tanh as the only reader: the activation runs as the
    /// product's epilogue.
    static func fuseActivations(_ g: Graph, opset: Int) {
        let match = Matcher(g), usage = match.usage, c = match.constants, producer = match.producer
        var removed = Set<Int>()
        for (ai, act) in g.nodes.enumerated() where act.isDefaultDomain && !act.inputs.isEmpty {
            guard let activation = activation(of: act, constants: c, opset: opset),
                  let pi = producer[act.inputs[0]], !removed.contains(pi), usage.isPrivate(act.inputs[0]) else { continue }
            var node = g.nodes[pi]
            guard node.isDefaultDomain, ["Conv", "Gemm", "MatMul"].contains(node.opType), node.outputs.count == 1,
                  node.attribute(FusedAttributes.activation) == nil,
                  node.inputs.count >= 2, let w = c[node.inputs[1]], w.dtype == .float else { continue }
            node.attributes += FusedAttributes.attributes(for: activation)
            node.outputs = [act.outputs[0]]
            g.nodes[pi] = node
            removed.insert(ai)
        }
        g.nodes = g.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    static func activation(of n: Node, constants c: [String: Tensor], opset: Int) -> Activation? {
        switch n.opType {
        case "Relu": return .relu
        case "Sigmoid": return .sigmoid
        case "Tanh": return .tanh
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

    /// Removes nodes none of whose outputs is read or is a graph output, repeatedly.
    static func removeDeadNodes(_ g: Graph) {
        while true {
            let usage = Usage(g)
            let before = g.nodes.count
            g.nodes.removeAll { n in n.outputs.allSatisfy { $0.isEmpty || ((usage.readers[$0] ?? 0) == 0 && !usage.outputs.contains($0)) } }
            if g.nodes.count == before { break }
        }
        let read = Set(g.nodes.flatMap(\.inputs)).union(g.outputs.map(\.name)).union(g.inputs.map(\.name))
        g.initializers.removeAll { !read.contains($0.name) }
    }
}
