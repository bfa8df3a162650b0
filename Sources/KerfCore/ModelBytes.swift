#if canImport(Glibc)
import Glibc
#endif

/// A serialized ModelProto read with the raw_data payloads of its graph's initializers set
/// apart, each read straight into the storage its tensor will use.
///
/// Parsing the whole file with SwiftProtobuf needs the file's bytes and the parsed message
/// (which copies every raw_data into a Data of its own) at once, and the import copies each
/// payload once more: a model's weights were in memory twice while loading. Here the bytes
/// outside the payloads (nodes, names, small tensors) are parsed as usual, and the weights are
/// read once, from the file or the caller's buffer.
struct ModelBytes {
    /// The ModelProto without the set-apart raw_data fields (the messages around them shortened).
    var stripped: [UInt8] = []
    /// The raw_data of the graph's i-th initializer, for those set apart.
    var payloads: [Int: TensorStorage] = [:]

    /// raw_data fields shorter than this stay in `stripped`.
    static let minimumPayload = 4096

    /// Reads a serialized ModelProto from `source`. nil when the bytes are not the protobuf shape
    /// expected here, or hold no payload worth setting apart: the caller then parses them whole
    /// (and the parser reports what is wrong). Throws only when reading fails.
    static func read(_ source: ByteSource) throws -> ModelBytes? {
        var reader = WireReader(source)
        var split = ModelBytes()
        var graphs = 0
        // A nested message that is not as expected fails the whole split (`Unexpected`).
        guard let model = try reader.message(end: source.count, { field, reader, out in
            guard field.number == 7 else { return false }  // ModelProto.graph
            graphs += 1
            var initializers = 0
            guard graphs == 1, let graph = try reader.message(end: reader.position + field.length, { field, reader, out in
                guard field.number == 5 else { return false }  // GraphProto.initializer
                let index = initializers
                initializers += 1
                var rawData = 0
                guard let tensor = try reader.message(end: reader.position + field.length, { field, reader, _ in
                    guard field.number == 9 else { return false }  // TensorProto.raw_data
                    rawData += 1
                    guard rawData == 1 else { throw WireReader.Unexpected() }  // the last one would count
                    guard field.length >= minimumPayload else { return false }
                    let storage = try TensorStorage(uninitializedByteCount: field.length, for: "initializer #\(index)'s raw data")
                    try reader.read(field.length, into: storage.pointer)
                    split.payloads[index] = storage
                    return true
                }) else { throw WireReader.Unexpected() }
                WireReader.append(field: 5, message: tensor, to: &out)
                return true
            }) else { throw WireReader.Unexpected() }
            WireReader.append(field: 7, message: graph, to: &out)
            return true
        }) else { return nil }
        if split.payloads.isEmpty { return nil }
        split.stripped = model
        return split
    }
}

/// Bytes read by offset: a file (pread) or memory.
protocol ByteSource {
    var count: Int { get }
    /// Reads bytes [offset, offset + n) into `buffer`; throws when they cannot all be read.
    func read(at offset: Int, _ n: Int, into buffer: UnsafeMutableRawPointer) throws
}

struct MemoryByteSource: ByteSource {
    let bytes: UnsafeRawBufferPointer
    var count: Int { bytes.count }
    func read(at offset: Int, _ n: Int, into buffer: UnsafeMutableRawPointer) throws {
        if n > 0 { buffer.copyMemory(from: bytes.baseAddress! + offset, byteCount: n) }
    }
}

/// An open regular file, read with pread (no mapping: a file truncated meanwhile is an error,
/// not a SIGBUS).
struct FileByteSource: ByteSource {
    let fd: Int32
    let count: Int
    let path: String
    func read(at offset: Int, _ n: Int, into buffer: UnsafeMutableRawPointer) throws {
        var done = 0
        while done < n {
            let got = pread(fd, buffer + done, n - done, off_t(offset + done))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                throw KerfError.io("cannot read '\(path)': \(got == 0 ? "unexpected end of file" : String(cString: strerror(errno)))")
            }
            done += got
        }
    }
}

/// Front-to-back reading of protobuf wire format through a small buffer.
struct WireReader {
    struct Unexpected: Error {}

    struct Field {
        let number: Int
        let wireType: Int
        /// The body's length in bytes (length-delimited fields only).
        let length: Int
    }

    private let source: ByteSource
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var bufferStart = 0, bufferCount = 0
    private(set) var position = 0

    init(_ source: ByteSource) { self.source = source }

    private mutating func byte() throws -> UInt8 {
        if position >= bufferStart + bufferCount {
            guard position < source.count else { throw Unexpected() }
            let start = position, count = min(buffer.count, source.count - position), source = source
            try buffer.withUnsafeMutableBytes { try source.read(at: start, count, into: $0.baseAddress!) }
            bufferStart = start
            bufferCount = count
        }
        position += 1
        return buffer[position - 1 - bufferStart]
    }

    private mutating func varint(into out: inout [UInt8]) throws -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 70, by: 7) {
            let b = try byte()
            out.append(b)
            value |= UInt64(b & 0x7f) << UInt64(shift)
            if b & 0x80 == 0 { return value }
        }
        throw Unexpected()
    }

    /// Reads `n` bytes into `p`.
    mutating func read(_ n: Int, into p: UnsafeMutableRawPointer) throws {
        guard n <= source.count - position else { throw Unexpected() }
        let buffered = max(0, min(n, bufferStart + bufferCount - position))
        if buffered > 0 {
            let offset = position - bufferStart
            buffer.withUnsafeBytes { p.copyMemory(from: $0.baseAddress! + offset, byteCount: buffered) }
            position += buffered
        }
        if n > buffered {
            try source.read(at: position, n - buffered, into: p + buffered)
            position += n - buffered
        }
    }

    /// Copies the fields up to `end` into a new message, except the length-delimited ones
    /// `special` handles (it reads the whole body, may append to the message, and returns true);
    /// `special` returns false, before reading anything, to have the field copied as it is.
    /// nil when the bytes are not valid wire format (or use groups) or `special` throws
    /// `Unexpected`; other errors (reading) are thrown.
    mutating func message(end: Int, _ special: (Field, inout WireReader, inout [UInt8]) throws -> Bool) throws -> [UInt8]? {
        var out: [UInt8] = []
        do {
            guard end <= source.count else { throw Unexpected() }
            while position < end {
                var head: [UInt8] = []
                let tag = try varint(into: &head)
                let number = Int(tag >> 3), wireType = Int(tag & 7)
                guard number > 0 else { throw Unexpected() }
                var length = 0
                switch wireType {
                case 0: _ = try varint(into: &head)
                case 1: length = 8
                case 5: length = 4
                case 2:
                    let n = try varint(into: &head)
                    // The varints may have run past `end` (a field cut short by its message).
                    guard position <= end, n <= UInt64(end - position) else { throw Unexpected() }
                    length = Int(n)
                default: throw Unexpected()  // groups
                }
                if wireType == 2 {
                    let bodyEnd = position + length
                    if try special(Field(number: number, wireType: wireType, length: length), &self, &out) {
                        guard position == bodyEnd else { throw Unexpected() }
                        continue
                    }
                }
                guard position <= end, length <= end - position else { throw Unexpected() }
                out += head
                let start = out.count
                out += repeatElement(0, count: length)
                try out.withUnsafeMutableBytes { try read(length, into: $0.baseAddress! + start) }
            }
            guard position == end else { throw Unexpected() }
        } catch is Unexpected {
            return nil
        }
        return out
    }

    /// Appends a length-delimited field holding `message`.
    static func append(field: Int, message: [UInt8], to out: inout [UInt8]) {
        appendVarint(UInt64(field << 3 | 2), to: &out)
        appendVarint(UInt64(message.count), to: &out)
        out += message
    }

    private static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}
