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
}

extension Graph {
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
}
