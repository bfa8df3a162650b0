import KerfCore

/// A read-only view of a graph for pattern matching: producers, reader counts and constants,
/// taken when the matcher is made (rebuild it after editing the graph).
public struct Matcher {
    public let g: Graph
    public let producer: [String: Int]
    public let usage: Usage
    public let constants: [String: Tensor]

    /// `constantNodes`: Constant nodes' outputs count as constants too (for graphs matched
    /// before constant folding).
    public init(_ g: Graph, constantNodes: Bool = false) {
        self.g = g
        producer = g.producers()
        usage = Usage(g)
        constants = constantNodes ? g.constantValues() : g.constantInitializers()
    }

    /// The default-domain node of type `op` producing `value`, if any.
    public func node(_ value: String, _ op: String) -> (Int, Node)? {
        guard let i = producer[value], g.nodes[i].isDefaultDomain, g.nodes[i].opType == op else { return nil }
        return (i, g.nodes[i])
    }

    /// A float32 scalar constant (one element) named `value`.
    public func scalar(_ value: String) -> Float? {
        guard let t = constants[value], t.count == 1 else { return nil }
        switch t.dtype {
        case .float: return t.array(of: Float.self)[0]
        case .double: return Float(t.array(of: Double.self)[0])
        default: return nil
        }
    }

    /// The other input of a binary node, given one of them.
    public func other(_ n: Node, than value: String) -> String? {
        guard n.inputs.count == 2 else { return nil }
        if n.inputs[0] == value { return n.inputs[1] }
        if n.inputs[1] == value { return n.inputs[0] }
        return nil
    }

    /// True when `value` is read only by the given number of node inputs and is no graph output.
    public func readOnly(_ value: String, by count: Int) -> Bool {
        usage.readers[value] == count && !usage.outputs.contains(value)
    }

    /// ReduceMean over the last axis only, keeping dims (axes as attribute or constant input).
    public func isLastAxisMean(_ n: Node) -> Bool {
        if case .int(let k)? = n.attribute("keepdims"), k == 0 { return false }
        var axes: [Int64]? = nil
        if case .ints(let a)? = n.attribute("axes") { axes = a }
        if n.inputs.count > 1, let t = constants[n.inputs[1]], t.dtype == .int64 { axes = t.array(of: Int64.self) }
        return axes == [-1]
    }
}
