import FoundationEssentials
import KerfCore
import KerfCShims
#if canImport(Glibc)
import Glibc
#endif

/// The object behind a `kerf_model *`: the model plus C copies of its interface
/// descriptions and metadata, which live as long as the handle.
final class ModelHandle {
    let model: Model
    let inputs: [CValueInfo]
    let outputs: [CValueInfo]
    let metadata: CModelMetadata

    init(_ model: Model) {
        self.model = model
        inputs = model.graph.runtimeInputs.map(CValueInfo.init)
        outputs = model.graph.outputs.map(CValueInfo.init)
        metadata = CModelMetadata(model)
    }
}

/// Strings copied to C memory at stable addresses, freed with the owner.
final class CStrings {
    let pointers: UnsafeMutablePointer<UnsafePointer<CChar>?>

    /// One C string per entry; nil entries stay NULL.
    init(_ strings: [String?]) {
        pointers = .allocate(capacity: max(strings.count, 1))
        for (i, s) in strings.enumerated() { pointers[i] = s.map { UnsafePointer(strdup($0)!) } }
        count = strings.count
    }

    private let count: Int

    deinit {
        for i in 0..<count { free(UnsafeMutablePointer(mutating: pointers[i])) }
        pointers.deallocate()
    }
}

/// A graph input or output in C form (name, dims and dim names at stable addresses).
final class CValueInfo {
    let name: CStrings
    let dtype: Int32
    let rank: Int?
    let dims: UnsafeMutablePointer<Int64>?
    /// Per dim its symbolic name or NULL; nil when the rank is unknown or 0.
    let dimNames: CStrings?

    init(_ info: ValueInfo) {
        name = CStrings([info.name])
        dtype = info.dtype?.rawValue ?? 0
        if let shape = info.shape, !shape.isEmpty {
            rank = shape.count
            dims = UnsafeMutablePointer<Int64>.allocate(capacity: shape.count)
            for (i, d) in shape.enumerated() {
                if case .value(let v) = d { dims![i] = Int64(v) } else { dims![i] = -1 }
            }
            dimNames = CStrings(shape.map { if case .symbol(let s) = $0 { s } else { nil } })
        } else {
            rank = info.shape == nil ? nil : 0
            dims = nil
            dimNames = nil
        }
    }

    deinit { dims?.deallocate() }
}

/// A model's metadata in C form.
final class CModelMetadata {
    /// producer name and version, domain, doc string, graph name, graph doc string.
    let strings: CStrings
    let keys: CStrings
    let values: CStrings
    let modelVersion: Int64
    let propertyCount: Int

    init(_ model: Model) {
        strings = CStrings([model.producerName, model.producerVersion, model.domain, model.docString,
                            model.graph.name, model.graph.docString])
        keys = CStrings(model.metadataProps.map(\.key))
        values = CStrings(model.metadataProps.map(\.value))
        modelVersion = Int64(model.modelVersion)
        propertyCount = model.metadataProps.count
    }
}

extension kerf_value_info: SizedStruct {
    static let cName = "kerf_value_info"
    /// ABI 1.0: up to dims.
    static let firstSize = size(through: \.dims)
}

@c @implementation
public func kerf_model_load(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    out?.pointee = nil
    return guarded {
        let p = try string(path, "path")
        try argument(out != nil, "out is NULL")
        do {
            out!.pointee = HandleRegistry.shared.register(ModelHandle(try Model.load(path: p)))
        } catch let e as KerfError where e.status != KerfError.io("").status {
            throw e.prefixed("'\(p)'")
        }
    }
}

@c @implementation
public func kerf_model_load_bytes(_ data: UnsafeRawPointer?, _ size: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    out?.pointee = nil
    return guarded {
        try argument(data != nil || size == 0, "data is NULL")
        try argument(out != nil, "out is NULL")
        let bytes = size == 0 ? Data() : Data(bytes: data!, count: size)
        out!.pointee = HandleRegistry.shared.register(ModelHandle(try Model.load(bytes: bytes)))
    }
}

@c @implementation
public func kerf_model_save(_ model: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        try m.model.save(path: try string(path, "path"))
    }
}

@c @implementation
public func kerf_model_save_bytes(_ model: OpaquePointer?, _ data: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                  _ size: UnsafeMutablePointer<Int>?) -> Int32 {
    data?.pointee = nil
    return guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        try argument(data != nil && size != nil, "data or size is NULL")
        let bytes = try m.model.serialized()
        guard let buffer = malloc(max(bytes.count, 1)) else { throw KerfError.outOfMemory("cannot allocate \(bytes.count) bytes") }
        bytes.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
            if bytes.count > 0 { buffer.copyMemory(from: src.baseAddress!, byteCount: bytes.count) }
        }
        data!.pointee = buffer
        size!.pointee = bytes.count
    }
}

@c @implementation
public func kerf_model_free(_ model: OpaquePointer?) {
    HandleRegistry.shared.release(model, as: ModelHandle.self)
}

@c @implementation
public func kerf_model_input_count(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded { try store(out, try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model").inputs.count, "out") }
}

@c @implementation
public func kerf_model_output_count(_ model: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded { try store(out, try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model").outputs.count, "out") }
}

/// Describes input or output `index` in the caller's `info` (its first struct_size bytes).
private func describeValue(_ model: OpaquePointer?, _ index: Int, _ info: UnsafeMutablePointer<kerf_value_info>?, outputs: Bool) -> kerf_status {
    guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        guard let info else { throw KerfError.invalidArgument("info is NULL") }
        let structSize = info.pointee.struct_size
        try kerf_value_info.checkSize(structSize, "info")
        let list = outputs ? m.outputs : m.inputs
        try argument(index >= 0 && index < list.count, "index \(index) is out of range (\(list.count) \(outputs ? "outputs" : "inputs"))")
        let v = list[index]
        writeSized(kerf_value_info(struct_size: structSize, name: v.name.pointers[0], dtype: v.dtype, rank_known: v.rank == nil ? 0 : 1,
                                   rank: v.rank ?? 0, dims: v.dims.map { UnsafePointer($0) },
                                   dim_names: v.dimNames.map { UnsafePointer($0.pointers) }),
                   to: UnsafeMutableRawPointer(info), size: structSize)
    }
}

extension kerf_model_metadata: SizedStruct {
    static let cName = "kerf_model_metadata"
    /// ABI 1.10: up to property_values.
    static let firstSize = size(through: \.property_values)
}

@c @implementation
public func kerf_model_get_metadata(_ model: OpaquePointer?, _ metadata: UnsafeMutablePointer<kerf_model_metadata>?) -> kerf_status {
    guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        guard let metadata else { throw KerfError.invalidArgument("metadata is NULL") }
        let structSize = metadata.pointee.struct_size
        try kerf_model_metadata.checkSize(structSize, "metadata")
        let c = m.metadata
        let s = c.strings.pointers
        writeSized(kerf_model_metadata(struct_size: structSize, producer_name: s[0], producer_version: s[1], domain: s[2],
                                       doc_string: s[3], graph_name: s[4], graph_doc_string: s[5],
                                       model_version: c.modelVersion, n_properties: c.propertyCount,
                                       property_keys: UnsafePointer(c.keys.pointers), property_values: UnsafePointer(c.values.pointers)),
                   to: UnsafeMutableRawPointer(metadata), size: structSize)
    }
}

@c @implementation
public func kerf_model_input(_ model: OpaquePointer?, _ index: Int, _ info: UnsafeMutablePointer<kerf_value_info>?) -> kerf_status {
    describeValue(model, index, info, outputs: false)
}

@c @implementation
public func kerf_model_output(_ model: OpaquePointer?, _ index: Int, _ info: UnsafeMutablePointer<kerf_value_info>?) -> kerf_status {
    describeValue(model, index, info, outputs: true)
}
