import FoundationEssentials
import KerfCore
import KerfCShims
#if canImport(Glibc)
import Glibc
#endif

/// The object behind a `kerf_model *`: the model plus C copies of its interface
/// descriptions, which live as long as the handle.
final class ModelHandle {
    let model: Model
    let inputs: [CValueInfo]
    let outputs: [CValueInfo]

    init(_ model: Model) {
        self.model = model
        inputs = model.graph.runtimeInputs.map(CValueInfo.init)
        outputs = model.graph.outputs.map(CValueInfo.init)
    }
}

/// A graph input or output in C form (name and dims at stable addresses).
final class CValueInfo {
    let name: UnsafeMutablePointer<CChar>
    let dtype: Int32
    let rank: Int?
    let dims: UnsafeMutablePointer<Int64>?

    init(_ info: ValueInfo) {
        name = strdup(info.name)
        dtype = info.dtype?.rawValue ?? 0
        if let shape = info.shape {
            rank = shape.count
            dims = shape.isEmpty ? nil : UnsafeMutablePointer<Int64>.allocate(capacity: shape.count)
            for (i, d) in shape.enumerated() {
                if case .value(let v) = d { dims![i] = Int64(v) } else { dims![i] = -1 }
            }
        } else {
            rank = nil
            dims = nil
        }
    }

    deinit {
        free(name)
        dims?.deallocate()
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
        writeSized(kerf_value_info(struct_size: structSize, name: UnsafePointer(v.name), dtype: v.dtype, rank_known: v.rank == nil ? 0 : 1,
                                   rank: v.rank ?? 0, dims: v.dims.map { UnsafePointer($0) }),
                   to: UnsafeMutableRawPointer(info), size: structSize)
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
