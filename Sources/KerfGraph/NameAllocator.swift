import KerfCore

/// Fresh value names for a graph being rewritten: `make(base)` returns base, or base_1, base_2,
/// ... when taken, and reserves the result.
public final class NameAllocator {
    private var taken: Set<String>

    /// Every name `g` uses (initializers, inputs, outputs, node inputs and outputs) is taken.
    public init(_ g: Graph) {
        taken = Set(g.initializers.map(\.name)).union(g.inputs.map(\.name)).union(g.outputs.map(\.name))
        for n in g.nodes { taken.formUnion(n.outputs); taken.formUnion(n.inputs) }
    }

    public func make(_ base: String) -> String {
        var name = base, k = 1
        while taken.contains(name) { name = "\(base)_\(k)"; k += 1 }
        taken.insert(name)
        return name
    }
}
