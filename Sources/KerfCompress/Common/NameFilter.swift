import KerfCore

/// A user's exclude list: a weight is excluded when the list names the weight (initializer),
/// the node that consumes it, or that node's op type.
public struct NameFilter: Sendable {
    public var names: Set<String>

    public init(_ names: [String] = []) { self.names = Set(names) }

    public func excludes(weight: String, node: Node) -> Bool {
        names.contains(weight) || (!node.name.isEmpty && names.contains(node.name)) || names.contains(node.opType)
    }
}
