import FoundationEssentials
import OnnxProto
import SwiftProtobuf
#if canImport(Glibc)
import Glibc
#endif

/// Reads external data files relative to the model's directory, refusing paths that leave it.
struct DirectoryDataReader: ExternalDataReader {
    let directory: String

    func read(location: String, offset: Int, length: Int?) throws -> Data {
        guard !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
            throw KerfError.invalidModel("external data location '\(location)' leaves the model's directory")
        }
        let path = directory.isEmpty ? location : directory + "/" + location
        let data = try FileIO.read(path: path)
        let end = length.map { offset + $0 } ?? data.count
        guard offset <= data.count, end <= data.count else {
            throw KerfError.invalidModel("external data '\(location)' is \(data.count) bytes; wanted bytes \(offset)..<\(end)")
        }
        return data.subdata(in: offset..<end)
    }
}

extension Model {
    /// Loads an ONNX file; external tensor data is read relative to its directory. The weights
    /// stored in the file are read once, into the tensors that hold them (`ModelBytes`), so
    /// loading needs about one copy of them in memory.
    public static func load(path: String) throws -> Model {
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let split = try FileIO.withOpenFile(path: path) { try ModelBytes.read($0) }
        guard let split else {
            return try OnnxImport.model(parse(FileIO.read(path: path)), external: DirectoryDataReader(directory: dir))
        }
        return try OnnxImport.model(parse(Data(split.stripped)), external: DirectoryDataReader(directory: dir), payloads: split.payloads)
    }

    /// Parses serialized ModelProto bytes. Without `externalDataDirectory`, external data is an error.
    public static func load(bytes: Data, externalDataDirectory: String? = nil) throws -> Model {
        let external = externalDataDirectory.map { DirectoryDataReader(directory: $0) }
        let split = try bytes.withUnsafeBytes { try ModelBytes.read(MemoryByteSource(bytes: $0)) }
        guard let split else { return try OnnxImport.model(parse(bytes), external: external) }
        return try OnnxImport.model(parse(Data(split.stripped)), external: external, payloads: split.payloads)
    }

    private static func parse(_ bytes: Data) throws -> Onnx_ModelProto {
        do {
            return try Onnx_ModelProto(serializedBytes: bytes)
        } catch {
            throw KerfError.invalidModel("not a valid ONNX protobuf (\(bytes.count) bytes): \(error)")
        }
    }

    /// Serializes the model with every tensor inline.
    public func serialized() throws -> Data {
        let proto = try OnnxExport.model(self)
        do {
            return try proto.serializedBytes()
        } catch {
            throw KerfError.invalidModel("cannot serialize the model: \(error)")
        }
    }

    /// Writes the model to `path` atomically (temp file in the same directory, fsync, rename).
    /// Initializers that were loaded from external data are written to an external data file
    /// of the same name next to `path`, also atomically, before the model itself.
    public func save(path: String) throws {
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        var external: [String: Data] = [:]
        let proto = try OnnxExport.model(self) { initializer in
            guard let location = initializer.externalLocation else { return initializer.tensor.encode(name: initializer.name) }
            var t = initializer.tensor.encode(name: initializer.name)
            let payload = t.rawData
            t.clearRawData()
            var buffer = external[location] ?? Data()
            while buffer.count % 64 != 0 { buffer.append(0) }  // aligned offsets, as onnx writes them
            let offset = buffer.count
            buffer.append(payload)
            external[location] = buffer
            t.dataLocation = .external
            t.externalData = [("location", location), ("offset", String(offset)), ("length", String(payload.count))].map {
                var e = Onnx_StringStringEntryProto()
                e.key = $0.0
                e.value = $0.1
                return e
            }
            return t
        }
        let bytes: Data
        do { bytes = try proto.serializedBytes() } catch { throw KerfError.invalidModel("cannot serialize the model: \(error)") }
        for (location, data) in external.sorted(by: { $0.key < $1.key }) {
            guard !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
                throw KerfError.invalidArgument("external data location '\(location)' leaves the model's directory")
            }
            try FileIO.writeAtomically(data, to: dir + "/" + location)
        }
        try FileIO.writeAtomically(bytes, to: path)
    }
}

/// Whole-file reads and atomic writes with POSIX calls, so every failure has a clear message.
public enum FileIO {
    /// Runs `body` on the regular file at `path`, open for reading.
    static func withOpenFile<R>(path: String, _ body: (FileByteSource) throws -> R) throws -> R {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw KerfError.io("cannot open '\(path)': \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw KerfError.io("cannot stat '\(path)': \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw KerfError.io("'\(path)' is not a regular file") }
        return try body(FileByteSource(fd: fd, count: Int(st.st_size), path: path))
    }

    public static func read(path: String) throws -> Data {
        try withOpenFile(path: path) { file in
            var data = Data(count: file.count)
            try data.withUnsafeMutableBytes { (buf: UnsafeMutableRawBufferPointer) in
                if file.count > 0 { try file.read(at: 0, file.count, into: buf.baseAddress!) }
            }
            return data
        }
    }

    /// Writes `data` to a temporary file beside `path`, fsyncs it, renames it over `path` and
    /// fsyncs the directory. On any failure the temporary file is removed and `path` is untouched.
    public static func writeAtomically(_ data: Data, to path: String) throws {
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let base = path.split(separator: "/").last.map(String.init) ?? path
        var template = Array((dir + "/." + base + ".kerf-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw KerfError.io("cannot create a file in '\(dir)': \(String(cString: strerror(errno)))") }
        let tmp = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        var done = 0
        try data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
            while done < data.count {
                let n = write(fd, buf.baseAddress! + done, data.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    close(fd)
                    throw KerfError.io("cannot write '\(tmp)': \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
        guard fsync(fd) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw KerfError.io("cannot fsync '\(tmp)': \(message)")
        }
        fchmod(fd, 0o644)
        close(fd)
        guard rename(tmp, path) == 0 else { throw KerfError.io("cannot rename onto '\(path)': \(String(cString: strerror(errno)))") }
        ok = true
        let dfd = open(dir, O_RDONLY | O_DIRECTORY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
