import FoundationEssentials
import OnnxProto
import SwiftProtobuf

/// ModelProto -> Model. The only place (with OnnxExport) that reads protobuf types.
enum OnnxImport {
    /// Consumes `proto`: each initializer's bytes are freed as soon as its tensor is decoded, so
    /// a model in memory never holds much more than one copy of its weights.
    /// `payloads` holds the raw_data of graph initializers (by position) that were read apart
    /// from `proto` (`ModelBytes`); their tensors take these storages as they are.
    static func model(_ proto: consuming Onnx_ModelProto, external: ExternalDataReader?,
                      payloads: [Int: TensorStorage] = [:]) throws -> Model {
        guard proto.hasGraph else { throw KerfError.invalidModel("the model has no graph") }
        guard !proto.opsetImport.isEmpty else { throw KerfError.invalidModel("the model imports no operator set (opset_import is empty)") }
        let opsets = proto.opsetImport.map { OpsetImport(domain: $0.domain, version: Int($0.version)) }
        let graphProto = proto.graph
        proto.clearGraph()
        let model = Model(graph: Graph(), irVersion: Int(proto.irVersion), opsetImports: opsets)
        try model.validateOpsets()  // before decoding any weight
        let graph = try self.graph(graphProto, external: external, payloads: payloads)
        try graph.validateSingleAssignment()
        try graph.validateNodeArity()
        model.graph = graph
        model.producerName = proto.producerName
        model.producerVersion = proto.producerVersion
        model.domain = proto.domain
        model.modelVersion = Int(proto.modelVersion)
        model.docString = proto.docString
        model.metadataProps = proto.metadataProps.map { ($0.key, $0.value) }
        model.externalDataFiles = Set(graph.initializers.compactMap(\.externalLocation))
        model.proto = proto  // without its graph
        return model
    }

    static func graph(_ source: consuming Onnx_GraphProto, external: ExternalDataReader?,
                      payloads: [Int: TensorStorage] = [:]) throws -> Graph {
        var proto = source
        let g = Graph(name: proto.name)
        g.docString = proto.docString
        g.inputs = proto.input.map(valueInfo)
        g.outputs = proto.output.map(valueInfo)
        g.valueInfo = proto.valueInfo.map(valueInfo)
        var initializerProtos = proto.initializer
        proto.initializer = []
        g.initializers.reserveCapacity(initializerProtos.count)
        for k in initializerProtos.indices {
            let t = initializerProtos[k]
            initializerProtos[k] = Onnx_TensorProto()  // the last reference to t's bytes is t
            var i = Initializer(name: t.name, tensor: try Tensor.decode(t, external: external, rawData: payloads[k]))
            i.docString = t.docString
            if t.dataLocation == .external {
                i.externalLocation = t.externalData.first { $0.key == "location" }?.value
            }
            // Only what export restores: keeping the whole proto would keep a second copy of the data.
            var kept = Onnx_TensorProto()
            kept.metadataProps = t.metadataProps
            kept.unknownFields = t.unknownFields
            i.proto = kept
            g.initializers.append(i)
        }
        for sparse in proto.sparseInitializer {
            let dense = try denseTensor(fromSparse: sparse, external: external)
            var i = Initializer(name: sparse.values.name, tensor: dense)
            i.storedSparse = true
            g.initializers.append(i)
        }
        g.nodes = try proto.node.map { try node($0, external: external) }
        proto.node = []
        proto.sparseInitializer = []
        proto.input = []
        proto.output = []
        proto.valueInfo = []
        g.proto = proto
        return g
    }

    static func node(_ proto: Onnx_NodeProto, external: ExternalDataReader?) throws -> Node {
        var n = Node(name: proto.name, opType: proto.opType, domain: proto.domain,
                     inputs: proto.input, outputs: proto.output)
        n.docString = proto.docString
        n.attributes = try proto.attribute.map { try attribute($0, external: external, node: proto) }
        var kept = proto
        kept.attribute = []
        kept.input = []
        kept.output = []
        n.proto = kept
        return n
    }

    static func attribute(_ proto: Onnx_AttributeProto, external: ExternalDataReader?, node: Onnx_NodeProto) throws -> Attribute {
        let value: AttributeValue
        do {
            switch proto.type {
            case .float: value = .float(proto.f)
            case .int: value = .int(proto.i)
            case .string: value = .string(proto.s)
            case .tensor: value = .tensor(try Tensor.decode(proto.t, external: external))
            case .graph: value = .graph(try graph(proto.g, external: external))
            case .floats: value = .floats(proto.floats)
            case .ints: value = .ints(proto.ints)
            case .strings: value = .strings(proto.strings)
            case .tensors: value = .tensors(try proto.tensors.map { try Tensor.decode($0, external: external) })
            case .graphs: value = .graphs(try proto.graphs.map { try graph($0, external: external) })
            case .undefined:
                // IR < 3 files may omit the type: infer it from the one field that is set.
                if proto.hasF { value = .float(proto.f) } else if proto.hasI { value = .int(proto.i) }
                else if proto.hasS { value = .string(proto.s) } else if proto.hasT { value = .tensor(try Tensor.decode(proto.t, external: external)) }
                else if proto.hasG { value = .graph(try graph(proto.g, external: external)) }
                else if !proto.floats.isEmpty { value = .floats(proto.floats) }
                else if !proto.ints.isEmpty { value = .ints(proto.ints) }
                else if !proto.strings.isEmpty { value = .strings(proto.strings) }
                else { value = .opaque }
            default: value = .opaque
            }
        } catch let e as KerfError {
            throw e.prefixed("attribute '\(proto.name)' of node '\(node.name)' (\(node.opType))")
        }
        var a = Attribute(name: proto.name, value: value)
        a.docString = proto.docString
        a.refAttrName = proto.refAttrName
        a.proto = proto
        return a
    }

    static func valueInfo(_ proto: Onnx_ValueInfoProto) -> ValueInfo {
        var v = ValueInfo(name: proto.name, type: proto.hasType ? valueType(proto.type) : nil)
        v.docString = proto.docString
        v.proto = proto
        return v
    }

    static func valueType(_ proto: Onnx_TypeProto) -> ValueType {
        switch proto.value {
        case .tensorType(let t)?:
            let dtype = t.hasElemType ? DType(rawValue: t.elemType) : nil
            guard t.hasShape else { return .tensor(dtype: dtype, shape: nil) }
            let dims: [Dim] = t.shape.dim.map { d in
                switch d.value {
                case .dimValue(let v)?: return v >= 0 ? .value(Int(v)) : .unknown
                case .dimParam(let s)?: return s.isEmpty ? .unknown : .symbol(s)
                case nil: return .unknown
                }
            }
            return .tensor(dtype: dtype, shape: dims)
        case .sequenceType?: return .other(kind: "sequence")
        case .mapType?: return .other(kind: "map")
        case .optionalType?: return .other(kind: "optional")
        case .sparseTensorType?: return .other(kind: "sparse tensor")
        case .opaqueType?: return .other(kind: "opaque")
        case nil: return .other(kind: "unknown")
        }
    }
}
