import FoundationEssentials
import KerfCore

/// What a pruning call did, tensor by tensor. Encodes to the JSON the C API and the Python
/// binding return (snake_case keys).
public struct PruneReport: Codable, Sendable {
    /// One weight that was pruned or rewritten.
    public struct TensorEntry: Codable, Sendable {
        public var name: String
        /// The node that consumes the weight (the first one, if shared).
        public var node: String
        public var opType: String
        public var shapeBefore: [Int]
        public var shape: [Int]
        public var zerosBefore: Int
        public var zeros: Int
        /// zeros / element count after pruning.
        public var sparsity: Double
        /// Saved in the graph's sparse_initializer list.
        public var storedSparse: Bool = false
    }

    /// A weight (or channel group) left alone, and why.
    public struct Skipped: Codable, Sendable {
        public var name: String
        public var reason: String
    }

    /// "magnitude", "2:4", "channel", ...
    public var method: String
    public var scope: String
    public var targetSparsity: Double
    public var tensors: [TensorEntry] = []
    public var skipped: [Skipped] = []
    /// Elements of all initializers, and how many of them are non-zero.
    public var parametersBefore = 0
    public var parametersAfter = 0
    public var nonzeroParametersBefore = 0
    public var nonzeroParametersAfter = 0
    /// Serialized model size (initializers in the file; external data included).
    public var bytesBefore = 0
    public var bytesAfter = 0
    /// Zeros over elements across the pruned tensors.
    public var overallSparsity = 0.0

    public init(method: String, scope: String, targetSparsity: Double) {
        self.method = method
        self.scope = scope
        self.targetSparsity = targetSparsity
    }

    /// The report as JSON with snake_case keys.
    public func json() throws -> String { try snakeCaseJSON(self) }
}
