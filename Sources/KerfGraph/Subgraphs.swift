import KerfCore

extension Node {
    /// The graphs held in this node's attributes (If branches, Loop and Scan bodies).
    public var subgraphs: [Graph] {
        attributes.flatMap { a -> [Graph] in
            switch a.value {
            case .graph(let g): return [g]
            case .graphs(let gs): return gs
            default: return []
            }
        }
    }

    /// True when the node holds a subgraph (which may read outer values by name).
    public var hasSubgraph: Bool { !subgraphs.isEmpty }

    /// The values of the enclosing graphs that the node's subgraphs read by name (ONNX lexical
    /// scoping; at any depth), each once, in the order the subgraphs first read them. They are
    /// inputs of the node as much as `inputs` are: its producers must run first, and the node
    /// reads them when it runs. Empty for a node without subgraphs.
    public var implicitInputs: [String] {
        var names: [String] = [], seen = Set<String>()
        for g in subgraphs {
            for name in g.outerNames where seen.insert(name).inserted { names.append(name) }
        }
        return names
    }

    /// `inputs` followed by `implicitInputs`: every value the node reads.
    public var readNames: [String] {
        hasSubgraph ? inputs + implicitInputs : inputs
    }
}

extension Graph {
    /// The names this graph's nodes read (their `readNames`) or it returns as outputs that the
    /// graph itself does not define (as an input, initializer or node output): values of an
    /// enclosing graph, when this graph is a subgraph. Each once, in first-read order; never "".
    public var outerNames: [String] {
        var defined = Set(inputs.map(\.name)).union(initializers.map(\.name))
        for n in nodes { defined.formUnion(n.outputs) }
        defined.insert("")
        var names: [String] = []
        for n in nodes {
            for name in n.readNames where !defined.contains(name) {
                defined.insert(name)
                names.append(name)
            }
        }
        for o in outputs where !defined.contains(o.name) {
            defined.insert(o.name)
            names.append(o.name)
        }
        return names
    }

    /// Every value name that a node inside a subgraph of this graph (at any depth) reads.
    public func namesReadInSubgraphs() -> Set<String> {
        var names = Set<String>()
        func collect(_ g: Graph) {
            for n in g.nodes {
                names.formUnion(n.inputs)
                n.subgraphs.forEach(collect)
            }
        }
        for n in nodes { n.subgraphs.forEach(collect) }
        return names
    }

    /// The values of this graph (or of its enclosing graphs) that its nodes' subgraphs read by
    /// name: the union of the nodes' `implicitInputs`.
    public var implicitReads: Set<String> {
        Set(nodes.lazy.filter(\.hasSubgraph).flatMap(\.implicitInputs))
    }
}
