/// Load-time checks of a model's structure that decoding alone does not make: the operator set
/// versions it imports, single assignment of its value names and each node's number of inputs
/// and outputs. `OnnxImport` runs them on every model it reads, so a session never runs a graph
/// whose meaning is ambiguous.
extension Model {
    /// The newest version of the default ONNX operator set (domain "" or "ai.onnx") Kerf loads:
    /// opset 28, the newest the onnx 1.23 schema (`OnnxProto`) defines and the newest the
    /// conformance corpus runs (Tests/Conformance: the onnx 1.23 node tests of claimed ops reach
    /// it). Operators read their version from the model and refuse attributes or forms they do
    /// not know; a newer opset could change an operator's meaning silently, so, as ONNX Runtime
    /// does, a model importing one is refused with the version named.
    public static let newestDefaultOpset = 28

    /// Throws `.invalidModel` when the model imports a default-domain opset outside
    /// 1...`newestDefaultOpset`.
    public func validateOpsets() throws {
        for opset in opsetImports where opset.domain.isEmpty || opset.domain == "ai.onnx" {
            let domain = opset.domain.isEmpty ? "the default ONNX domain" : "domain 'ai.onnx'"
            guard opset.version >= 1 else {
                throw KerfError.invalidModel("the model imports opset \(opset.version) of \(domain); opset versions start at 1")
            }
            guard opset.version <= Model.newestDefaultOpset else {
                throw KerfError.invalidModel("the model imports opset \(opset.version) of \(domain), newer than Kerf supports "
                                             + "(opsets 1 to \(Model.newestDefaultOpset))")
            }
        }
    }
}

extension Graph {
    /// Checks that every value name has one definition (ONNX's single static assignment):
    /// declared inputs are distinct, initializers are distinct (an initializer may also be
    /// declared as an input), and no node writes a graph input, an initializer, a name another
    /// node (or the same node) writes, or, in a subgraph, a value of an enclosing graph defined
    /// before the node that holds the subgraph (the rule `onnx.checker` applies).
    /// Empty names (omitted optional outputs) are ignored. Throws `.invalidModel` naming both
    /// definitions.
    public func validateSingleAssignment() throws {
        try validateSingleAssignment(enclosing: [])
    }

    /// Checks every node's arity, here and in subgraphs: a default-domain operator gets at least
    /// the inputs and outputs its least demanding ONNX version requires (`OnnxArity`, counting
    /// omitted optional slots written as ""), and a node of any other operator at least one
    /// output. Graph passes read `inputs[0]`, `outputs[0]` and the like of the nodes they match
    /// (a MaxPool without outputs and a DequantizeLinear without inputs made them read past the
    /// arrays, found by the fuzzer). Throws `.invalidModel` naming the node.
    public func validateNodeArity() throws {
        for node in nodes {
            let minimum = node.isDefaultDomain ? OnnxArity.minimum[node.opType] : nil
            if node.outputs.isEmpty, (minimum?.outputs ?? 1) > 0 {
                throw KerfError.invalidModel("\(node.label) has no outputs")
            }
            if let minimum {
                guard node.inputs.count >= minimum.inputs, node.outputs.count >= minimum.outputs else {
                    throw KerfError.invalidModel("\(node.label) has \(node.inputs.count) inputs and \(node.outputs.count) outputs; "
                        + "every version of \(node.opType) takes at least \(minimum.inputs) and \(minimum.outputs)")
                }
            }
            for attribute in node.attributes {
                switch attribute.value {
                case .graph(let g): try g.validateNodeArity()
                case .graphs(let gs): for g in gs { try g.validateNodeArity() }
                default: continue
                }
            }
        }
    }

    private func validateSingleAssignment(enclosing: Set<String>) throws {
        var origin: [String: String] = [:]  // name -> what defines it, for messages
        for input in inputs where !input.name.isEmpty {
            guard origin.updateValue("a graph input", forKey: input.name) == nil else {
                throw KerfError.invalidModel("graph '\(name)' declares input '\(input.name)' twice")
            }
        }
        var initializerNames = Set<String>()
        for initializer in initializers where !initializer.name.isEmpty {
            guard initializerNames.insert(initializer.name).inserted else {
                throw KerfError.invalidModel("graph '\(name)' has two initializers named '\(initializer.name)'")
            }
            origin[initializer.name] = origin[initializer.name] == nil ? "an initializer" : "a graph input and an initializer"
        }
        for node in nodes {
            for attribute in node.attributes {
                let subgraphs: [Graph]
                switch attribute.value {
                case .graph(let g): subgraphs = [g]
                case .graphs(let gs): subgraphs = gs
                default: continue
                }
                let visible = enclosing.union(origin.keys)
                for subgraph in subgraphs {
                    do {
                        try subgraph.validateSingleAssignment(enclosing: visible)
                    } catch let e as KerfError {
                        throw e.prefixed("subgraph '\(attribute.name)' of \(node.label)")
                    }
                }
            }
            for output in node.outputs where !output.isEmpty {
                if let first = origin[output] {
                    throw KerfError.invalidModel("\(node.label) writes '\(output)', which is already \(first)")
                }
                if enclosing.contains(output) {
                    throw KerfError.invalidModel("\(node.label) writes '\(output)', a value of an enclosing graph")
                }
                origin[output] = "written by \(node.label)"
            }
        }
    }
}
