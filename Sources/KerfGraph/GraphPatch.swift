import KerfCore

/// Edits of one graph, recorded while matching against it and applied at once, so that node
/// indices and a `Matcher` taken before stay valid until `apply`: nodes replaced, removed or
/// inserted, readers redirected from one value to another, initializers added and dropped.
///
///     var patch = GraphPatch()
///     patch.replace(matmulIndex, with: fused)   // the fused node writes the Add's output
///     patch.remove(addIndex)
///     patch.apply(to: g)
public struct GraphPatch {
    private var replaced: [Int: Node] = [:]
    private var removed = Set<Int>()
    private var inserted: [Int: [Node]] = [:]
    private var redirects: [String: String] = [:]
    private var added: [Initializer] = []
    private var dropped = Set<String>()

    public init() {}

    /// True when nothing was recorded.
    public var isEmpty: Bool {
        replaced.isEmpty && removed.isEmpty && inserted.isEmpty && redirects.isEmpty && added.isEmpty && dropped.isEmpty
    }

    /// True when node `index` was replaced or removed (a later match must not use it).
    public func touches(_ index: Int) -> Bool { replaced[index] != nil || removed.contains(index) }

    public func isRemoved(_ index: Int) -> Bool { removed.contains(index) }

    public func isReplaced(_ index: Int) -> Bool { replaced[index] != nil }

    /// Node `index` becomes `node` (in place: its position in the order is kept), even if it is
    /// also removed: a fused node takes the place of the last node of the chain it replaces.
    public mutating func replace(_ index: Int, with node: Node) { replaced[index] = node }

    public mutating func remove(_ index: Int) { removed.insert(index) }

    public mutating func remove<S: Sequence>(contentsOf indices: S) where S.Element == Int { removed.formUnion(indices) }

    /// `nodes` go before node `index` (or at the end when `index` is the node count).
    public mutating func insert(_ nodes: [Node], before index: Int) { inserted[index, default: []] += nodes }

    /// Every node input reading `value` reads `replacement` instead (graph outputs keep their
    /// names). Chains are followed: a → b and b → c send readers of a to c.
    public mutating func redirect(_ value: String, to replacement: String) { redirects[value] = replacement }

    public mutating func addInitializer(_ name: String, _ tensor: Tensor) { added.append(Initializer(name: name, tensor: tensor)) }

    public mutating func dropInitializer(_ name: String) { dropped.insert(name) }

    /// Applies the edits: replacements, insertions and removals by original index, then
    /// redirections, then initializers.
    public func apply(to g: Graph) {
        guard !isEmpty else { return }
        var nodes: [Node] = []
        nodes.reserveCapacity(g.nodes.count + inserted.values.reduce(0) { $0 + $1.count })
        for (i, n) in g.nodes.enumerated() {
            nodes += inserted[i] ?? []
            if let r = replaced[i] { nodes.append(r) } else if !removed.contains(i) { nodes.append(n) }
        }
        nodes += inserted[g.nodes.count] ?? []
        g.nodes = nodes
        g.redirectReaders(redirects)
        if !dropped.isEmpty { g.initializers.removeAll { dropped.contains($0.name) } }
        g.initializers += added
    }
}
