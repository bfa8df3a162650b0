import KerfCore

extension Model {
    /// Static types of the main graph's values under the model's opset imports. Before IR
    /// version 4 every initializer is also listed as an input; such models' initializers count as
    /// constants.
    public func inferTypes() -> InferredTypes {
        graph.inferTypes(opsets: opsetImports, initializersAreConstant: irVersion < 4)
    }
}

extension Graph {
    /// Static dtype and shape inference, without running anything.
    ///
    /// Starts from the declared graph inputs and the initializers, walks the nodes in dependency
    /// order and applies one rule per operator of the default ONNX domain (others, and nodes
    /// holding subgraphs, get unknown outputs). Where a rule leaves a dtype or dims unknown the
    /// graph's `valueInfo` / `outputs` declarations fill them in; a declaration that contradicts
    /// the rule is reported in `diagnostics` and the rule's answer kept. Small integer tensors
    /// (constants, Shape results and what is computed from them) are tracked by content, so
    /// Reshape, Expand, Slice, ... with computed shape inputs resolve.
    ///
    /// The contents of an initializer that is also a graph input (a feed may replace it) are
    /// not used unless `initializersAreConstant`.
    ///
    /// Never throws or traps: odd inputs give unknown types and a diagnostic line.
    public func inferTypes(opsets: [OpsetImport], initializersAreConstant: Bool = false) -> InferredTypes {
        let opset = opsets.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 0
        return inferTypes(opset: opset, initializersAreConstant: initializersAreConstant)
    }

    /// As `inferTypes(opsets:)` with the default domain at version `opset` (0: the newest forms).
    public func inferTypes(opset: Int, initializersAreConstant: Bool = false) -> InferredTypes {
        var result = InferredTypes()
        var facts: [String: TensorFact] = [:]
        var declared: [String: TensorFact] = [:]
        for v in valueInfo + outputs {
            if case .tensor(let d, let s)? = v.type { declared[v.name] = TensorFact(dtype: d, shape: s) }
        }
        for v in inputs {
            if case .tensor(let d, let s)? = v.type { facts[v.name] = TensorFact(dtype: d, shape: s) }
            else { facts[v.name] = .unknown }
        }
        var constants = initializersAreConstant
            ? Dictionary(initializers.map { ($0.name, $0.tensor) }, uniquingKeysWith: { _, last in last })
            : constantInitializers()
        for i in initializers {
            let fact = TensorFact(dtype: i.tensor.dtype, shape: i.tensor.shape.map(Dim.value))
            if facts[i.name] == nil { facts[i.name] = fact }
            if let c = constants[i.name], let v = KnownValue(tensor: c) { result.values[i.name] = v }
        }

        let outside = Set(facts.keys).union([""])
        let (order, cyclic) = Graph.dependencyOrder(nodes, definedOutside: outside)
        if !cyclic.isEmpty { result.diagnostics.append("\(cyclic.count) nodes lie on a cycle; their outputs are left as declared") }
        for index in order {
            let node = nodes[index]
            var context = ShapeRuleContext(
                node: node, opset: opset,
                inputFacts: node.inputs.map { facts[$0] ?? .unknown },
                inputValues: node.inputs.map { result.values[$0] },
                constants: constants)
            if node.isDefaultDomain, !node.hasSubgraph, let rule = ShapeRules.table[node.opType] {
                rule(&context)
            }
            result.diagnostics += context.diagnostics
            for (i, name) in node.outputs.enumerated() where !name.isEmpty {
                var fact = context.outputs[i]
                if let d = declared[name] { fact = merge(fact, d, name: name, into: &result.diagnostics) }
                facts[name] = fact
                if let v = context.outputValues[i] { result.values[name] = v }
            }
            if node.opType == "Constant", node.isDefaultDomain, node.outputs.count == 1,
               case .tensor(let t)? = node.attribute("value") {
                constants[node.outputs[0]] = t
            }
        }
        for index in cyclic {
            for name in nodes[index].outputs where !name.isEmpty { facts[name] = declared[name] ?? .unknown }
        }
        for (name, fact) in facts where !name.isEmpty { result.types[name] = fact.valueType }
        return result
    }

    /// A rule's fact completed by a declaration: unknown parts taken from `declared`; a
    /// contradiction reported and the rule's answer kept.
    private func merge(_ inferred: TensorFact, _ declared: TensorFact, name: String, into diagnostics: inout [String]) -> TensorFact {
        var out = inferred
        if let d = declared.dtype {
            if let i = inferred.dtype, i != d {
                diagnostics.append("'\(name)': declared \(d), inferred \(i)")
            } else {
                out.dtype = d
            }
        }
        if let ds = declared.shape {
            if let s = inferred.shape {
                if let m = Shapes.merge(s, ds) { out.shape = m }
                else { diagnostics.append("'\(name)': declared shape \(ds), inferred \(s)") }
            } else {
                out.shape = ds
            }
        }
        return out
    }
}
