import KerfCore

extension Graph {
    /// The nodes in an order where each follows the producers of its inputs (Kahn's algorithm,
    /// ready nodes taken in file order). Throws on a cycle and on an input that no node, graph
    /// input or initializer defines. A node holding subgraphs follows the producers of the values
    /// they read too (`Node.implicitInputs`).
    public func topologicalOrder() throws -> [Node] {
        var defined = Set(inputs.map(\.name)).union(initializers.map(\.name))
        defined.insert("")
        let producers = producers()
        for n in nodes {
            for name in n.readNames where !defined.contains(name) && producers[name] == nil {
                throw KerfError.invalidModel("\(n.label) reads '\(name)', which no node, input or initializer defines")
            }
        }
        let (order, cyclic) = Graph.dependencyOrder(nodes, definedOutside: defined)
        guard cyclic.isEmpty else { throw KerfError.invalidModel("the graph has a cycle") }
        return order.map { nodes[$0] }
    }

    /// Node indices in an order where every node follows the producers (among `nodes`) of its
    /// inputs, ready nodes taken in file order; values named in `definedOutside` need no
    /// producer. Nodes on a cycle are left out of `order` and listed in file order in `cyclic`.
    public static func dependencyOrder(_ nodes: [Node], definedOutside: Set<String> = []) -> (order: [Int], cyclic: [Int]) {
        var producer: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
        var pending = [Int](repeating: 0, count: nodes.count)
        var consumers = [[Int]](repeating: [], count: nodes.count)
        for (i, n) in nodes.enumerated() {
            for name in Set(n.readNames) where !definedOutside.contains(name) {
                guard let p = producer[name] else { continue }
                pending[i] += 1
                consumers[p].append(i)
            }
        }
        var order = nodes.indices.filter { pending[$0] == 0 }
        var cursor = 0
        while cursor < order.count {
            let i = order[cursor]
            cursor += 1
            for c in consumers[i] {
                pending[c] -= 1
                if pending[c] == 0 { order.append(c) }
            }
        }
        let placed = Set(order)
        return (order, order.count == nodes.count ? [] : nodes.indices.filter { !placed.contains($0) })
    }
}
