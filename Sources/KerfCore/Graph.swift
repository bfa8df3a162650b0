import FoundationEssentials
import OnnxProto

/// One dimension of a declared value shape.
public enum Dim: Equatable, Sendable, CustomStringConvertible {
    case value(Int)
    case symbol(String)
    case unknown

    public var description: String {
        switch self {
        case .value(let v): return String(v)
        case .symbol(let s): return s
        case .unknown: return "?"
        }
    }
}

/// The declared type of a graph value. Non-tensor types (sequence, map, optional, sparse)
/// are kept opaque: Kerf preserves them but does not compute on them.
public enum ValueType: Equatable, Sendable {
    /// `shape` is nil when the rank is unknown.
    case tensor(dtype: DType?, shape: [Dim]?)
    case other(kind: String)
}

/// A named, typed graph value (graph input, output or value_info entry).
public struct ValueInfo: Sendable {
    public var name: String
    public var type: ValueType?
    public var docString: String = ""
    var proto: Onnx_ValueInfoProto?

    public init(name: String, type: ValueType?) {
        self.name = name
        self.type = type
    }

    public var dtype: DType? {
        if case .tensor(let d, _)? = type { return d }
        return nil
    }

    public var shape: [Dim]? {
        if case .tensor(_, let s)? = type { return s }
        return nil
    }
}

/// An attribute value. Kinds Kerf does not interpret (sparse tensors, type protos) stay
/// opaque and are written back unchanged.
public enum AttributeValue: @unchecked Sendable {
    case float(Float)
    case int(Int64)
    case string(Data)
    case tensor(Tensor)
    case graph(Graph)
    case floats([Float])
    case ints([Int64])
    case strings([Data])
    case tensors([Tensor])
    case graphs([Graph])
    case opaque
}

public struct Attribute: @unchecked Sendable {
    public var name: String
    public var value: AttributeValue
    public var docString: String = ""
    /// Set inside function bodies: the attribute takes the caller's attribute of this name.
    public var refAttrName: String = ""
    var proto: Onnx_AttributeProto?

    public init(name: String, value: AttributeValue) {
        self.name = name
        self.value = value
    }
}

/// One operator application. Empty strings in `inputs` / `outputs` mark omitted optional values.
public struct Node: @unchecked Sendable {
    public var name: String
    public var opType: String
    /// "" (or "ai.onnx") for the default ONNX domain.
    public var domain: String
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [Attribute]
    public var docString: String = ""
    var proto: Onnx_NodeProto?

    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [Attribute] = []) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    public func attribute(_ name: String) -> AttributeValue? {
        attributes.first { $0.name == name }?.value
    }

    /// "node 'name' (OpType)" for messages.
    public var label: String { name.isEmpty ? "node of type \(opType)" : "node '\(name)' (\(opType))" }

    /// The value of the node's metadata_props entry `key` as the file held it (the torch dynamo
    /// exporter's "namespace", the module path of the node), or nil.
    public func metadata(_ key: String) -> String? {
        proto?.metadataProps.first { $0.key == key }?.value
    }

    /// True for the default ONNX operator domain.
    public var isDefaultDomain: Bool { domain.isEmpty || domain == "ai.onnx" }
}

/// A named constant tensor of a graph.
/// A named constant of a graph. Its tensor's storage is marked long-lived
/// (`TensorStorage.keepOutOfPool`): freed weights go back to the system, not to the pool of
/// activation buffers.
public struct Initializer: @unchecked Sendable {
    public var name: String
    public var tensor: Tensor {
        didSet { tensor.storage.keepOutOfPool() }
    }
    public var docString: String = ""
    /// The external-data file it was read from, if any (relative to the model).
    public var externalLocation: String?
    /// Read from (and written back to) the graph's sparse_initializer list.
    public var storedSparse = false
    var proto: Onnx_TensorProto?

    public init(name: String, tensor: Tensor) {
        self.name = name
        self.tensor = tensor
        tensor.storage.keepOutOfPool()
    }
}

/// A computation graph: nodes in file order (ONNX requires topological order for the main
/// graph; Kerf sorts again before running), its interface and its constants.
public final class Graph: @unchecked Sendable {
    public var name: String
    public var nodes: [Node]
    /// Declared inputs. Old models also list initializers here; `runtimeInputs` omits them.
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    public var valueInfo: [ValueInfo]
    public var initializers: [Initializer]
    public var docString: String = ""
    var proto: Onnx_GraphProto?

    public init(name: String = "", nodes: [Node] = [], inputs: [ValueInfo] = [], outputs: [ValueInfo] = [],
                valueInfo: [ValueInfo] = [], initializers: [Initializer] = []) {
        self.name = name
        self.nodes = nodes
        self.inputs = inputs
        self.outputs = outputs
        self.valueInfo = valueInfo
        self.initializers = initializers
    }

    /// Inputs that callers must (or may) feed: declared inputs without an initializer.
    public var runtimeInputs: [ValueInfo] {
        let constants = Set(initializers.map(\.name))
        return inputs.filter { !constants.contains($0.name) }
    }

    public func initializer(named name: String) -> Initializer? {
        initializers.first { $0.name == name }
    }
}

/// An operator set the model imports.
public struct OpsetImport: Equatable, Sendable {
    public var domain: String
    public var version: Int
    public init(domain: String, version: Int) {
        self.domain = domain
        self.version = version
    }
}

/// An ONNX model: a graph plus the metadata around it. Everything ONNX defines that this
/// type does not model (functions, training info, unknown fields) is kept and written back.
public final class Model: @unchecked Sendable {
    public var irVersion: Int
    public var opsetImports: [OpsetImport]
    public var producerName: String = ""
    public var producerVersion: String = ""
    public var domain: String = ""
    public var modelVersion: Int = 0
    public var docString: String = ""
    public var metadataProps: [(key: String, value: String)] = []
    public var graph: Graph
    /// The external-data files the model's initializers were read from (relative to the model's
    /// directory). While it is not empty, `save(path:)` keeps large weights external and never
    /// writes one of these files.
    public var externalDataFiles: Set<String> = []
    var proto: Onnx_ModelProto?

    public init(graph: Graph, irVersion: Int = 8, opsetImports: [OpsetImport] = [OpsetImport(domain: "", version: 17)]) {
        self.graph = graph
        self.irVersion = irVersion
        self.opsetImports = opsetImports
    }

    /// A new model of `graph` (and `opsetImports`, by default this model's) with this model's IR
    /// version and descriptive fields: producer, domain, model version, doc string, metadata.
    public func replacing(graph: Graph, opsetImports: [OpsetImport]? = nil) -> Model {
        let m = Model(graph: graph, irVersion: irVersion, opsetImports: opsetImports ?? self.opsetImports)
        m.producerName = producerName
        m.producerVersion = producerVersion
        m.domain = domain
        m.modelVersion = modelVersion
        m.docString = docString
        m.metadataProps = metadataProps
        return m
    }

    /// The imported version of the default ONNX operator set (0 when not imported).
    public var defaultOpset: Int {
        opsetImports.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 0
    }

    public func opsetVersion(domain: String) -> Int? {
        if domain.isEmpty || domain == "ai.onnx" { return defaultOpset == 0 ? nil : defaultOpset }
        return opsetImports.first { $0.domain == domain }?.version
    }

    /// Names of functions the model defines locally (domain, name).
    public var localFunctions: [(domain: String, name: String)] {
        proto?.functions.map { ($0.domain, $0.name) } ?? []
    }
}
