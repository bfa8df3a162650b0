import FoundationEssentials
import OnnxProto
import SwiftProtobuf
#if canImport(Glibc)
import Glibc
#endif

/// Reads external data files inside the model's directory. A location must be relative, and
/// after symbolic links are resolved it must still name a regular file inside that directory
/// (as ONNX Runtime checks); the file is opened without following a final link and without
/// blocking (a FIFO is refused, not waited on), and only the requested slice is read.
struct DirectoryDataReader: ExternalDataReader {
    let directory: String

    func read(location: String, offset: Int, length: Int?) throws -> TensorStorage {
        guard !location.isEmpty, !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
            throw KerfError.invalidModel("external data location '\(location)' leaves the model's directory")
        }
        let path = (directory.isEmpty ? "." : directory) + "/" + location
        guard let root = FileIO.resolvedPath(directory.isEmpty ? "." : directory) else {
            throw KerfError.io("cannot resolve the model's directory '\(directory)': \(String(cString: strerror(errno)))")
        }
        guard let resolved = FileIO.resolvedPath(path) else {
            throw KerfError.io("cannot open external data '\(path)': \(String(cString: strerror(errno)))")
        }
        guard resolved.hasPrefix(root == "/" ? "/" : root + "/") else {
            throw KerfError.invalidModel("external data location '\(location)' resolves to '\(resolved)', outside the model's directory")
        }
        return try FileIO.withOpenFile(path: resolved, followingLinks: false) { file in
            let (end, overflow) = offset.addingReportingOverflow(length ?? max(file.count - offset, 0))
            guard offset >= 0, !overflow, end <= file.count else {
                throw KerfError.invalidModel("external data '\(location)' is \(file.count) bytes; wanted \(length.map(String.init) ?? "the rest") from offset \(offset)")
            }
            let storage = try TensorStorage(uninitializedByteCount: end - offset, for: "external data '\(location)'")
            if end > offset { try file.read(at: offset, end - offset, into: storage.pointer) }
            return storage
        }
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
    ///
    /// A model loaded with external data keeps its weights external: every initializer of 1 KiB
    /// or more (new ones too, such as quantized weights) goes to one file named after `path`
    /// (`model.onnx` -> `model.onnx.data`, as `torch.onnx.export` names it), written atomically
    /// before the model; smaller ones are stored inline (as `onnx` does). The
    /// data file is never one the model's own initializers were read from: an in-place rewrite
    /// of `model.onnx` reading `model.onnx.data` writes `model.onnx.1.data` (and the next one
    /// `model.onnx.data` again), so a failure at any point leaves the original loadable and
    /// unchanged. No other file is written.
    public func save(path: String) throws {
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let location = externalDataName(for: path)
        var external = Data()
        let keepsExternalData = !externalDataFiles.isEmpty
        let proto = try OnnxExport.model(self) { initializer in
            var t = initializer.tensor.encode(name: initializer.name)
            guard keepsExternalData, t.rawData.count >= Model.inlineDataLimit else { return t }
            while external.count % 64 != 0 { external.append(0) }  // aligned offsets, as onnx writes them
            let offset = external.count
            external.append(t.rawData)
            t.clearRawData()
            t.dataLocation = .external
            t.externalData = [("location", location), ("offset", String(offset)), ("length", String(external.count - offset))].map {
                var e = Onnx_StringStringEntryProto()
                e.key = $0.0
                e.value = $0.1
                return e
            }
            return t
        }
        let bytes: Data
        do { bytes = try proto.serializedBytes() } catch { throw KerfError.invalidModel("cannot serialize the model: \(error)") }
        // A new data file takes the mode of the model it belongs to (a 0600 model's weights stay private).
        if !external.isEmpty { try FileIO.writeAtomically(external, to: dir + "/" + location, modeOf: path) }
        try FileIO.writeAtomically(bytes, to: path)
    }

    /// Initializers smaller than this many bytes are saved inline even when they were external.
    static let inlineDataLimit = 1024

    /// The external-data file name `save(path:)` uses: `<file name>.data`, or `<file name>.1.data`
    /// when the model's initializers were read from a file of the first name.
    func externalDataName(for path: String) -> String {
        let base = path.split(separator: "/").last.map(String.init) ?? path
        let name = base + ".data"
        return externalDataFiles.contains(name) ? base + ".1.data" : name
    }
}

/// Whole-file reads and atomic writes with POSIX calls, so every failure has a clear message.
public enum FileIO {
    /// Runs `body` on the regular file at `path`, open for reading. The file is opened without
    /// blocking (a FIFO or device is refused, not waited on) and, unless `followingLinks`, a
    /// symbolic link as the last component is refused.
    static func withOpenFile<R>(path: String, followingLinks: Bool = true, _ body: (FileByteSource) throws -> R) throws -> R {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followingLinks ? 0 : O_NOFOLLOW))
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

    /// Linux's O_TMPFILE (`__O_TMPFILE | O_DIRECTORY`, a macro Swift does not import): opening a
    /// directory with it makes an unnamed file there.
    private static let openUnnamedFile: Int32 = 0o20_000_000 | O_DIRECTORY

    /// The absolute path of `path` with every symbolic link, `.` and `..` resolved; nil (errno
    /// set) when it does not exist.
    static func resolvedPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// Removes the temporary names (`.<base>.kerf-*` in `dir`) that earlier writes of the same
    /// file left when they were killed inside their final rename.
    private static func removeStaleTemporaries(in dir: String, base: String) {
        guard let stream = opendir(dir) else { return }
        defer { closedir(stream) }
        let prefix = "." + base + ".kerf-"
        while let entry = readdir(stream) {
            // The name in place: a dirent record is only as long as its name, so copying the
            // 256-byte d_name field would read past the last record of readdir's buffer.
            let field = UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \dirent.d_name)!
            let name = String(cString: field.assumingMemoryBound(to: CChar.self))
            if name.hasPrefix(prefix) { unlink(dir + "/" + name) }
        }
    }

    /// Writes `data` to a new file beside `path`, fsyncs it, renames it over `path` and fsyncs
    /// the directory. On any failure `path` is untouched. The file is made unnamed (`O_TMPFILE`)
    /// and named only just before the rename, so a process killed while writing leaves nothing
    /// behind, except when the kill lands inside that rename (a fatal signal can abort it): then
    /// the temporary name stays, and the next write of the same file removes it. (Two processes
    /// writing one file at once can therefore fail the later rename; `path` stays whole.) It gets the mode (and, where permitted, the owner) of the file it replaces, or
    /// where there is none, of the existing file `reference`; otherwise 0666 less the umask, as
    /// `open` would give it.
    public static func writeAtomically(_ data: Data, to path: String, modeOf reference: String? = nil) throws {
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let base = path.split(separator: "/").last.map(String.init) ?? path
        var existing = stat()
        let replaces = stat(path, &existing) == 0 || reference.map { stat($0, &existing) == 0 } == true
        func failure(_ what: String) -> KerfError { .io("cannot \(what) a file in '\(dir)': \(String(cString: strerror(errno)))") }

        removeStaleTemporaries(in: dir, base: base)
        /// The temporary file's name once it has one; removed unless renamed over `path`.
        var named: String?
        var fd = open(dir, openUnnamedFile | O_WRONLY | O_CLOEXEC, 0o666)
        if fd < 0 {  // file systems without O_TMPFILE: a named temporary file from the start
            var template = Array((dir + "/." + base + ".kerf-XXXXXX").utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            guard fd >= 0 else { throw failure("create") }
            named = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let mask = umask(0o022)
            umask(mask)
            fchmod(fd, 0o666 & ~mask)
        }
        defer {
            close(fd)
            if let named { unlink(named) }
        }
        var done = 0
        try data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
            while done < data.count {
                let n = write(fd, buf.baseAddress! + done, data.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw failure("write") }
                done += n
            }
        }
        if replaces {
            _ = fchown(fd, existing.st_uid, existing.st_gid)
            fchmod(fd, existing.st_mode & 0o7777)
        }
        guard fsync(fd) == 0 else { throw failure("fsync") }
        if named == nil {
            // The unnamed file gets a name only now: a kill leaves it behind only between here
            // and the rename.
            let name = dir + "/." + base + ".kerf-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            guard linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0 else {
                throw failure("name")
            }
            named = name
        }
        guard let tmp = named, rename(tmp, path) == 0 else {
            throw KerfError.io("cannot rename onto '\(path)': \(String(cString: strerror(errno)))")
        }
        named = nil
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
