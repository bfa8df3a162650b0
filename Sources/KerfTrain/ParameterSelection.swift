import KerfCore
import KerfGraph

/// Which initializers train. By default every float initializer of more than one element on a
/// differentiable path to the loss that gets a gradient (single numbers are constants of the
/// formula: epsilons, exponents, scales); `trainable` lists them instead, `frozen` removes some.
/// Each entry of either list matches an initializer by its name, or every initializer read by a
/// node of that name or of that op type.
public struct ParameterSelection: Sendable {
    public var trainable: [String]?
    public var frozen: [String]

    public init(trainable: [String]? = nil, frozen: [String] = []) {
        self.trainable = trainable
        self.frozen = frozen
    }

    /// The selected initializers of `graph`, in the graph's order. Throws when an entry matches
    /// nothing, or when nothing is left to train.
    func resolve(in graph: Graph, loss: String, opset: Int) throws -> [String] {
        let floats = graph.initializers.filter { $0.tensor.dtype.isFloatingPoint && $0.tensor.count > 0 }.map(\.name)
        let weights = Set(graph.initializers.filter { $0.tensor.dtype.isFloatingPoint && $0.tensor.count > 1 }.map(\.name))
        var selected = try trainable.map { Set(try resolveEntries($0, in: graph)) } ?? reachingLoss(graph, loss: loss, candidates: weights)
        selected.subtract(try resolveEntries(frozen, in: graph))
        let ordered = floats.filter(selected.contains)
        guard !ordered.isEmpty else { throw KerfError.invalidArgument("no parameter to train (every float initializer is frozen or does not reach the loss)") }
        return ordered
    }

    /// The float initializers each entry names (by name, or read by a node of that name or op
    /// type), in the graph's order. Throws for an entry that matches nothing.
    func resolveEntries(_ entries: [String], in graph: Graph) throws -> [String] {
        let floats = Set(graph.initializers.filter { $0.tensor.dtype.isFloatingPoint }.map(\.name))
        var found = Set<String>()
        for entry in entries {
            var matched = floats.contains(entry) || graph.initializer(named: entry) != nil
            if floats.contains(entry) { found.insert(entry) }
            for node in graph.nodes where node.name == entry || node.opType == entry {
                matched = true
                found.formUnion(node.inputs.filter(floats.contains))
            }
            guard matched else { throw KerfError.invalidArgument("'\(entry)' names no float initializer, node or op type of the model") }
        }
        return graph.initializers.map(\.name).filter(found.contains)
    }

    /// The candidates with a path to the loss through differentiable ops.
    private func reachingLoss(_ graph: Graph, loss: String, candidates: Set<String>) -> Set<String> {
        var feedsLoss: Set<String> = [loss]
        for node in graph.nodes.reversed() where !Differentiation.nonDifferentiable.contains(node.opType) {
            if node.outputs.contains(where: feedsLoss.contains) { feedsLoss.formUnion(node.inputs) }
        }
        // Node order may not be topological in a loaded file: repeat until stable.
        var changed = true
        while changed {
            changed = false
            for node in graph.nodes where !Differentiation.nonDifferentiable.contains(node.opType) {
                if node.outputs.contains(where: feedsLoss.contains) {
                    let before = feedsLoss.count
                    feedsLoss.formUnion(node.inputs)
                    changed = changed || feedsLoss.count != before
                }
            }
        }
        return candidates.intersection(feedsLoss)
    }
}
