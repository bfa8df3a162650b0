import FoundationEssentials
import OnnxProto
import SwiftProtobuf

/// Model -> ModelProto. Starts from the protos kept at import so that fields the IR does not
/// model (unknown fields, functions, metadata of nodes and values) are written back unchanged.
enum OnnxExport {
    /// Decides, per initializer, whether its bytes go to an external file; returns the
    /// TensorProto to store in the model (and writes nothing itself).
    typealias TensorWriter = (Initializer) throws -> Onnx_TensorProto

    static func model(_ m: Model, tensorWriter: TensorWriter? = nil) throws -> Onnx_ModelProto {
        var p = m.proto ?? Onnx_ModelProto()
        p.irVersion = Int64(m.irVersion)
        let originalOpsets = p.opsetImport
        p.opsetImport = m.opsetImports.map { opset in
            if let kept = originalOpsets.first(where: { $0.domain == opset.domain && $0.version == Int64(opset.version) }) {
                return kept
            }
            var o = Onnx_OperatorSetIdProto()
            if !opset.domain.isEmpty { o.domain = opset.domain }
            o.version = Int64(opset.version)
            return o
        }
        if !m.producerName.isEmpty || p.hasProducerName { p.producerName = m.producerName }
        if !m.producerVersion.isEmpty || p.hasProducerVersion { p.producerVersion = m.producerVersion }
        if !m.domain.isEmpty || p.hasDomain { p.domain = m.domain }
        if m.modelVersion != 0 || p.hasModelVersion { p.modelVersion = Int64(m.modelVersion) }
        if !m.docString.isEmpty || p.hasDocString { p.docString = m.docString }
        p.metadataProps = m.metadataProps.map {
            var e = Onnx_StringStringEntryProto()
            e.key = $0.key
            e.value = $0.value
            return e
        }
        p.graph = try graph(m.graph, tensorWriter: tensorWriter)
        return p
    }

    static func graph(_ g: Graph, tensorWriter: TensorWriter?) throws -> Onnx_GraphProto {
        var p = g.proto ?? Onnx_GraphProto()
        p.name = g.name
        if !g.docString.isEmpty || p.hasDocString { p.docString = g.docString }
        p.node = try g.nodes.map { try node($0, tensorWriter: tensorWriter) }
        p.input = g.inputs.map(valueInfo)
        p.output = g.outputs.map(valueInfo)
        p.valueInfo = g.valueInfo.map(valueInfo)
        p.initializer = []
        p.sparseInitializer = []
        for i in g.initializers {
            if i.storedSparse {
                p.sparseInitializer.append(sparse(i))
                continue
            }
            var t = try tensorWriter?(i) ?? i.tensor.encode(name: i.name)
            if !i.docString.isEmpty { t.docString = i.docString }
            if let kept = i.proto {
                t.metadataProps = kept.metadataProps
                t.unknownFields = kept.unknownFields
            }
            p.initializer.append(t)
        }
        return p
    }

    static func node(_ n: Node, tensorWriter: TensorWriter?) throws -> Onnx_NodeProto {
        var p = n.proto ?? Onnx_NodeProto()
        if !n.name.isEmpty || p.hasName { p.name = n.name }
        p.opType = n.opType
        if !n.domain.isEmpty || p.hasDomain { p.domain = n.domain }
        p.input = n.inputs
        p.output = n.outputs
        if !n.docString.isEmpty || p.hasDocString { p.docString = n.docString }
        p.attribute = try n.attributes.map { try attribute($0, tensorWriter: tensorWriter) }
        return p
    }

    static func attribute(_ a: Attribute, tensorWriter: TensorWriter?) throws -> Onnx_AttributeProto {
        if case .opaque = a.value, let kept = a.proto { return kept }
        var p = Onnx_AttributeProto()
        if let kept = a.proto { p.unknownFields = kept.unknownFields }
        p.name = a.name
        if !a.docString.isEmpty { p.docString = a.docString }
        if !a.refAttrName.isEmpty { p.refAttrName = a.refAttrName }
        switch a.value {
        case .float(let v): p.type = .float; p.f = v
        case .int(let v): p.type = .int; p.i = v
        case .string(let v): p.type = .string; p.s = v
        case .tensor(let t): p.type = .tensor; p.t = t.encode(name: a.proto?.t.name ?? "")
        case .graph(let g): p.type = .graph; p.g = try graph(g, tensorWriter: tensorWriter)
        case .floats(let v): p.type = .floats; p.floats = v
        case .ints(let v): p.type = .ints; p.ints = v
        case .strings(let v): p.type = .strings; p.strings = v
        case .tensors(let v): p.type = .tensors; p.tensors = v.map { $0.encode(name: "") }
        case .graphs(let v): p.type = .graphs; p.graphs = try v.map { try graph($0, tensorWriter: tensorWriter) }
        case .opaque: break
        }
        return p
    }

    static func valueInfo(_ v: ValueInfo) -> Onnx_ValueInfoProto {
        var p = v.proto ?? Onnx_ValueInfoProto()
        p.name = v.name
        if !v.docString.isEmpty || p.hasDocString { p.docString = v.docString }
        switch v.type {
        case .tensor(let dtype, let shape)?:
            var t = p.type.tensorType  // keeps denotations and unknown fields of the original
            if let dtype { t.elemType = dtype.rawValue } else { t.clearElemType() }
            if let shape {
                let old = t.shape.dim
                t.shape.dim = shape.enumerated().map { (i, d) in
                    var dp = i < old.count ? old[i] : Onnx_TensorShapeProto.Dimension()
                    switch d {
                    case .value(let v): dp.dimValue = Int64(v)
                    case .symbol(let s): dp.dimParam = s
                    case .unknown: dp.value = nil
                    }
                    return dp
                }
            } else {
                t.clearShape()
            }
            p.type.tensorType = t
        case .other?: break  // kept as imported
        case nil: p.clearType()
        }
        return p
    }

    /// COO form with linear indices: the elements whose bytes are not all zero.
    static func sparse(_ i: Initializer) -> Onnx_SparseTensorProto {
        let t = i.tensor
        let size = t.dtype.byteSize
        let source = UnsafeRawPointer(t.storage.pointer)
        var nonzero: [Int64] = []
        for k in 0..<t.count where (0..<size).contains(where: { source.load(fromByteOffset: k * size + $0, as: UInt8.self) != 0 }) {
            nonzero.append(Int64(k))
        }
        // A part of a tensor that exists: no limit to check (every byte is written below).
        let values = Tensor(dtype: t.dtype, shape: [nonzero.count], storage: TensorStorage(copyingByteCount: nonzero.count * size))
        for (j, k) in nonzero.enumerated() {
            values.storage.pointer.advanced(by: j * size).copyMemory(from: source.advanced(by: Int(k) * size), byteCount: size)
        }
        var p = Onnx_SparseTensorProto()
        p.values = values.encode(name: i.name)
        p.indices = Tensor(shape: [nonzero.count], values: nonzero).encode(name: "")
        p.dims = t.shape.map { Int64($0) }
        return p
    }
}
