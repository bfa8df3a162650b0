import KerfCore

/// How many node inputs read each value of a graph, plus its outputs. A snapshot: it does not
/// follow later edits of the graph. A value that a node's subgraphs read by name counts as one
/// more reader of it (`Node.implicitInputs`), and is listed in `readBySubgraphs`: passes must
/// not rename it, as they cannot rewrite the subgraphs.
public struct Usage {
    public var readers: [String: Int] = [:]
    public let outputs: Set<String>
    public let readBySubgraphs: Set<String>

    public init(_ g: Graph) {
        outputs = Set(g.outputs.map(\.name))
        readBySubgraphs = g.implicitReads
        for n in g.nodes { for i in n.readNames where !i.isEmpty { readers[i, default: 0] += 1 } }
    }

    /// True when exactly one node input reads `name` and it is not a graph output.
    public func isPrivate(_ name: String) -> Bool { readers[name] == 1 && !outputs.contains(name) }

    /// True when nothing reads `name` and it is not a graph output.
    public func isUnread(_ name: String) -> Bool { (readers[name] ?? 0) == 0 && !outputs.contains(name) }
}

extension Graph {
    /// Initializers that no feed can override (those not also listed as graph inputs), by name.
    public func constantInitializers() -> [String: Tensor] {
        let fed = Set(inputs.map(\.name))
        var c: [String: Tensor] = [:]
        for i in initializers where !fed.contains(i.name) { c[i.name] = i.tensor }
        return c
    }

    /// `constantInitializers` and the outputs of default-domain Constant nodes (`value`,
    /// `value_float`, `value_int`), as a file holds them before any folding.
    public func constantValues() -> [String: Tensor] {
        var c = constantInitializers()
        for n in nodes where n.isDefaultDomain && n.opType == "Constant" && n.outputs.count == 1 && !n.hasSubgraph {
            switch n.attributes.first?.value {
            case .tensor(let t)?: c[n.outputs[0]] = t
            case .float(let v)?: c[n.outputs[0]] = Tensor(scalar: v)
            case .int(let v)?: c[n.outputs[0]] = Tensor(scalar: v)
            default: break
            }
        }
        return c
    }

    /// The index of the node producing each value (the last one, should several claim it).
    public func producers() -> [String: Int] {
        var p: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { for o in n.outputs where !o.isEmpty { p[o] = i } }
        return p
    }
}
