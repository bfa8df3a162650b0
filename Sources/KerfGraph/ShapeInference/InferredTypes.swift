import KerfCore

/// What static inference found about a graph's values: the type of every value it could reach
/// (graph inputs, initializers, node outputs), the contents of small integer tensors, and the
/// inconsistencies it met on the way.
public struct InferredTypes: Sendable {
    /// Type per value name. A value missing here had no producer the walk could reach.
    public var types: [String: ValueType] = [:]
    /// Known contents of small integer tensors (shape computations and integer constants).
    public var values: [String: KnownValue] = [:]
    /// One line per problem met: "<node label>: <what>". The values involved are left unknown.
    public var diagnostics: [String] = []

    public init() {}

    public func type(of name: String) -> ValueType? { types[name] }

    /// The element type, when known.
    public func dtype(of name: String) -> DType? {
        if case .tensor(let d, _)? = types[name] { return d }
        return nil
    }

    /// The shape (dims possibly symbolic or unknown); nil when even the rank is unknown.
    public func shape(of name: String) -> [Dim]? {
        if case .tensor(_, let s)? = types[name] { return s }
        return nil
    }

    /// The shape when every dim is a number.
    public func staticShape(of name: String) -> [Int]? {
        guard let s = shape(of: name) else { return nil }
        let ints = s.compactMap(\.intValue)
        return ints.count == s.count ? ints : nil
    }
}
