import FoundationEssentials

/// Reads and writes NumPy `.npy` arrays and (uncompressed) `.npz` archives, little-endian,
/// C order. Fortran-order and object arrays are rejected with a clear error.
public enum NumpyFile {
    static let descriptors: [String: DType] = [
        "<f4": .float, "<f8": .double, "<f2": .float16, "|u1": .uint8, "|i1": .int8, "<u2": .uint16, "<i2": .int16,
        "<i4": .int32, "<i8": .int64, "<u4": .uint32, "<u8": .uint64, "|b1": .bool,
    ]

    public static func readArray(path: String) throws -> Tensor {
        try decode(try FileIO.read(path: path), name: path)
    }

    /// Decodes .npy bytes.
    public static func decode(_ data: Data, name: String) throws -> Tensor {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
            throw KerfError.invalidArgument("'\(name)' is not a .npy file")
        }
        let major = bytes[6]
        let headerLength: Int, start: Int
        if major == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            start = 10
        } else {
            guard bytes.count >= 12 else { throw KerfError.invalidArgument("'\(name)' has a truncated .npy header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            start = 12
        }
        guard start + headerLength <= bytes.count else { throw KerfError.invalidArgument("'\(name)' has a truncated .npy header") }
        let header = String(decoding: bytes[start..<(start + headerLength)], as: UTF8.self)
        func field(_ key: String) -> Substring? {
            let pattern = Array("'\(key)':")
            let chars = Array(header)
            guard chars.count >= pattern.count else { return nil }
            for i in 0...(chars.count - pattern.count) where Array(chars[i..<(i + pattern.count)]) == pattern {
                let after = header.index(header.startIndex, offsetBy: i + pattern.count)
                return header[after...].drop { $0 == " " }
            }
            return nil
        }
        guard let descrField = field("descr"), let q1 = descrField.firstIndex(of: "'"),
              let q2 = descrField[descrField.index(after: q1)...].firstIndex(of: "'") else {
            throw KerfError.invalidArgument("'\(name)': .npy header has no descr")
        }
        let descr = String(descrField[descrField.index(after: q1)..<q2])
        guard let dtype = descriptors[descr] ?? (descr == "<b1" ? .bool : nil) else {
            throw KerfError.unsupported("'\(name)': .npy dtype '\(descr)' is not supported")
        }
        if let f = field("fortran_order"), f.hasPrefix("True") {
            throw KerfError.unsupported("'\(name)': Fortran-order arrays are not supported; save with np.ascontiguousarray")
        }
        guard let shapeField = field("shape"), let open = shapeField.firstIndex(of: "("),
              let close = shapeField[open...].firstIndex(of: ")") else {
            throw KerfError.invalidArgument("'\(name)': .npy header has no shape")
        }
        let shape = try shapeField[shapeField.index(after: open)..<close].split(separator: ",").map { part -> Int in
            guard let v = Int(part.filter { $0 != " " }), v >= 0 else {
                throw KerfError.invalidArgument("'\(name)': bad .npy shape")
            }
            return v
        }
        // The data must all be present before the tensor is allocated (the header alone may
        // declare any size); the size is computed with overflow checks.
        let offset = start + headerLength
        var needed: Int? = dtype.byteSize
        for d in shape { needed = needed.flatMap { n in let (p, o) = n.multipliedReportingOverflow(by: d); return o ? nil : p } }
        guard let needed, bytes.count - offset == needed else {
            throw KerfError.invalidArgument("'\(name)' holds \(bytes.count - offset) data bytes; \(dtype) \(shape) needs \(needed.map(String.init) ?? "more than Int holds")")
        }
        let t = try Tensor(uninitialized: dtype, shape: shape)
        bytes.withUnsafeBytes { raw in
            if t.byteCount > 0 { t.storage.pointer.copyMemory(from: raw.baseAddress! + offset, byteCount: t.byteCount) }
        }
        return t
    }

    /// Encodes a tensor as .npy (version 1.0) bytes.
    public static func encode(_ t: Tensor) throws -> Data {
        guard let descr = descriptors.first(where: { $0.value == t.dtype })?.key else {
            throw KerfError.unsupported("cannot write \(t.dtype) to .npy")
        }
        let shape = t.shape.count == 1 ? "(\(t.shape[0]),)" : "(" + t.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        data.append(contentsOf: Array(header.utf8))
        data.append(contentsOf: t.bytes)
        return data
    }

    /// Reads every array of an .npz archive (stored or deflated entries are both accepted only
    /// when stored; compressed archives are rejected: write them with np.savez, not savez_compressed).
    public static func readArchive(path: String) throws -> [(name: String, tensor: Tensor)] {
        let bytes = [UInt8](try FileIO.read(path: path))
        var arrays: [(String, Tensor)] = []
        var i = 0
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        while i + 30 <= bytes.count, u32(i) == 0x04034b50 {
            let method = u16(i + 8), flags = u16(i + 6)
            var size = u32(i + 18)
            let nameLength = u16(i + 26), extraLength = u16(i + 28)
            guard i + 30 + nameLength <= bytes.count else { break }
            let name = String(decoding: bytes[(i + 30)..<(i + 30 + nameLength)], as: UTF8.self)
            let start = i + 30 + nameLength + extraLength
            guard start <= bytes.count else { throw KerfError.invalidArgument("'\(path)' is a truncated .npz file") }
            if size == 0xFFFFFFFF {  // zip64: the sizes are in the extra field (read only inside it)
                var e = i + 30 + nameLength
                while e + 4 <= start {
                    if u16(e) == 1 {
                        guard e + 20 <= start, u32(e + 16) < 0x8000_0000 else {
                            throw KerfError.invalidArgument("'\(path)' has a bad zip64 size")
                        }
                        size = u32(e + 12) | u32(e + 16) << 32
                        break
                    }
                    e += 4 + u16(e + 2)
                }
            }
            guard method == 0, flags & 8 == 0 else {
                throw KerfError.unsupported("'\(path)': compressed .npz entries are not supported (use np.savez, not np.savez_compressed)")
            }
            guard size <= bytes.count - start else { throw KerfError.invalidArgument("'\(path)' is a truncated .npz file") }
            let key = name.hasSuffix(".npy") ? String(name.dropLast(4)) : name
            arrays.append((key, try decode(Data(bytes[start..<(start + size)]), name: "\(path):\(name)")))
            i = start + size
        }
        guard !arrays.isEmpty else { throw KerfError.invalidArgument("'\(path)' is not an .npz archive (or holds no arrays)") }
        return arrays
    }

    /// Writes arrays to an uncompressed .npz (zip, stored) archive, atomically.
    public static func writeArchive(_ arrays: [(name: String, tensor: Tensor)], path: String) throws {
        var out = Data(), central = Data()
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
        func le32(_ v: Int) -> [UInt8] { le16(v & 0xFFFF) + le16((v >> 16) & 0xFFFF) }
        for (name, tensor) in arrays {
            let payload = try encode(tensor)
            let fileName = Array((name + ".npy").utf8)
            let crc = Int(crc32(payload))
            let offset = out.count
            out.append(contentsOf: le32(0x04034b50) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0x21))
            out.append(contentsOf: le32(crc) + le32(payload.count) + le32(payload.count) + le16(fileName.count) + le16(0))
            out.append(contentsOf: fileName)
            out.append(payload)
            central.append(contentsOf: le32(0x02014b50) + le16(20) + le16(20) + le16(0) + le16(0) + le16(0) + le16(0x21))
            central.append(contentsOf: le32(crc) + le32(payload.count) + le32(payload.count) + le16(fileName.count))
            central.append(contentsOf: le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(offset))
            central.append(contentsOf: fileName)
        }
        let centralOffset = out.count
        out.append(central)
        out.append(contentsOf: le32(0x06054b50) + le16(0) + le16(0) + le16(arrays.count) + le16(arrays.count))
        out.append(contentsOf: le32(central.count) + le32(centralOffset) + le16(0))
        try FileIO.writeAtomically(out, to: path)
    }

    static func crc32(_ data: Data) -> UInt32 {
        var table = [UInt32](repeating: 0, count: 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1 }
            table[i] = c
        }
        var crc: UInt32 = 0xFFFFFFFF
        for b in data { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFFFFFF
    }
}
