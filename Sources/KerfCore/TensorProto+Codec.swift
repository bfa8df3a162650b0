import FoundationEssentials
import OnnxProto

/// Reads external tensor data: `location` is relative to the model's directory.
public protocol ExternalDataReader {
    /// Bytes [offset, offset + length) of the file at `location` (to its end when `length` is
    /// nil), read into storage of their own: only the slice is read, once.
    func read(location: String, offset: Int, length: Int?) throws -> TensorStorage
}

extension Tensor {
    /// Decodes a TensorProto (raw_data, typed fields, or external data through `external`).
    /// `rawData`, when given, is the proto's raw_data field read apart from it (`ModelBytes`):
    /// the tensor takes that storage without a copy. Throws `.invalidModel` when the payload
    /// does not match dtype and dims.
    static func decode(_ proto: Onnx_TensorProto, external: ExternalDataReader?, rawData payload: TensorStorage? = nil) throws -> Tensor {
        let what = proto.name.isEmpty ? "tensor" : "tensor '\(proto.name)'"
        guard let dtype = DType(rawValue: proto.dataType) else {
            throw KerfError.invalidModel("\(what) has unknown data_type \(proto.dataType)")
        }
        let (shape, count) = try checkedShape(proto.dims, what: what)
        if proto.hasSegment { throw KerfError.unsupported("\(what) uses segments, which Kerf does not read") }

        if dtype == .string {
            guard proto.stringData.count == count else {
                throw KerfError.invalidModel("\(what) has \(proto.stringData.count) strings for \(count) elements")
            }
            return Tensor(shape: shape, strings: proto.stringData)
        }
        if dtype == .uint2 || dtype == .int2 || dtype == .float4e2m1 || dtype == .uint4 || dtype == .int4 {
            // Packed sub-byte types: kept unpacked, one element per byte.
            let bits = (dtype == .uint2 || dtype == .int2) ? 2 : 4
            let packed: Data
            if proto.dataLocation == .external {
                let storage = try readExternal(proto, external: external, what: what)
                packed = Data(bytes: storage.pointer, count: storage.byteCount)
            } else if let payload {
                packed = Data(bytes: payload.pointer, count: payload.byteCount)
            } else if proto.hasRawData {
                packed = proto.rawData
            } else {
                packed = Data(proto.int32Data.map { UInt8(truncatingIfNeeded: $0) })
            }
            let needed = (count * bits + 7) / 8
            guard packed.count == needed else {
                throw KerfError.invalidModel("\(what) has \(packed.count) bytes, expected \(needed)")
            }
            var t = try Tensor(zeros: dtype, shape: shape)
            t.withMutableElements(as: UInt8.self) { out in
                packed.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                    let perByte = 8 / bits
                    let mask = UInt8((1 << bits) - 1)
                    for i in 0..<count {
                        var v = (raw[i / perByte] >> UInt8((i % perByte) * bits)) & mask
                        if dtype == .int4 || dtype == .int2, v & UInt8(1 << (bits - 1)) != 0 { v |= ~mask }
                        out[i] = v
                    }
                }
            }
            return t
        }

        let byteCount = count * dtype.byteSize
        if let payload = try (proto.dataLocation == .external ? readExternal(proto, external: external, what: what) : payload) {
            guard payload.byteCount == byteCount else {
                throw KerfError.invalidModel("\(what) (\(dtype), shape \(shape)) has \(payload.byteCount) data bytes, expected \(byteCount)")
            }
            return Tensor(dtype: dtype, shape: shape, storage: payload)
        }
        if proto.hasRawData {
            let raw = proto.rawData
            guard raw.count == byteCount else {
                throw KerfError.invalidModel("\(what) (\(dtype), shape \(shape)) has \(raw.count) data bytes, expected \(byteCount)")
            }
            let t = try Tensor(uninitialized: dtype, shape: shape)
            raw.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
                if byteCount > 0 { t.storage.pointer.copyMemory(from: src.baseAddress!, byteCount: byteCount) }
            }
            return t
        }

        // Typed fields: the values must all be present before the tensor is allocated (dims
        // alone may promise terabytes).
        var t: Tensor?
        func fill<S, T>(_ source: [S], as: T.Type, _ convert: (S) -> T) throws {
            guard source.count == count else {
                throw KerfError.invalidModel("\(what) (\(dtype), shape \(shape)) has \(source.count) values, expected \(count)")
            }
            var filled = try Tensor(uninitialized: dtype, shape: shape)
            filled.withMutableElements(as: T.self) { out in
                for i in 0..<count { out[i] = convert(source[i]) }
            }
            t = filled
        }
        switch dtype {
        case .float: try fill(proto.floatData, as: Float.self) { $0 }
        case .double: try fill(proto.doubleData, as: Double.self) { $0 }
        case .int64: try fill(proto.int64Data, as: Int64.self) { $0 }
        case .int32: try fill(proto.int32Data, as: Int32.self) { $0 }
        case .int16: try fill(proto.int32Data, as: Int16.self) { Int16(truncatingIfNeeded: $0) }
        case .int8: try fill(proto.int32Data, as: Int8.self) { Int8(truncatingIfNeeded: $0) }
        case .uint16, .float16, .bfloat16: try fill(proto.int32Data, as: UInt16.self) { UInt16(truncatingIfNeeded: $0) }
        case .uint8, .bool, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0:
            try fill(proto.int32Data, as: UInt8.self) { UInt8(truncatingIfNeeded: $0) }
        case .uint32: try fill(proto.uint64Data, as: UInt32.self) { UInt32(truncatingIfNeeded: $0) }
        case .uint64: try fill(proto.uint64Data, as: UInt64.self) { $0 }
        default:
            throw KerfError.unsupported("\(what) has dtype \(dtype), which Kerf cannot read from typed fields")
        }
        guard let t else { throw KerfError.internal("\(what) was not decoded") }
        return t
    }

    private static func readExternal(_ proto: Onnx_TensorProto, external: ExternalDataReader?, what: String) throws -> TensorStorage {
        var location = "", offset = 0, length: Int?
        for entry in proto.externalData {
            switch entry.key {
            case "location": location = entry.value
            case "offset": offset = Int(entry.value) ?? -1
            case "length": length = Int(entry.value) ?? -1
            default: break
            }
        }
        guard !location.isEmpty, offset >= 0, (length ?? 0) >= 0 else {
            throw KerfError.invalidModel("\(what) has invalid external_data entries")
        }
        guard let external else {
            throw KerfError.invalidModel("\(what) refers to external data '\(location)', but the model was loaded from bytes")
        }
        return try external.read(location: location, offset: offset, length: length)
    }

    /// Encodes as a TensorProto with `raw_data` (strings go to `string_data`).
    func encode(name: String) -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name
        p.dataType = dtype.rawValue
        p.dims = shape.map { Int64($0) }
        if dtype == .string {
            p.stringData = strings
        } else if dtype.isSubByte {
            let bits = (dtype == .uint2 || dtype == .int2) ? 2 : 4
            let perByte = 8 / bits
            var packed = [UInt8](repeating: 0, count: (count * bits + 7) / 8)
            let mask = UInt8((1 << bits) - 1)
            withElements(as: UInt8.self) { v in
                for i in 0..<count { packed[i / perByte] |= (v[i] & mask) << UInt8((i % perByte) * bits) }
            }
            p.rawData = Data(packed)
        } else {
            p.rawData = Data(bytes)
        }
        return p
    }
}
