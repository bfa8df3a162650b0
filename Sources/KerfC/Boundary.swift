import KerfCompress
import KerfCore
import KerfCShims
#if canImport(Glibc)
import Glibc
#endif

/// Runs one C API call: any thrown error becomes its status code and the thread's last error.
@inline(__always)
func guarded(_ body: () throws -> Void) -> kerf_status {
    do {
        try body()
        return kerf_status(KERF_OK)
    } catch let e as KerfError {
        kerf_shim_set_error(e.message)
        return e.status
    } catch {
        kerf_shim_set_error("internal error: \(error)")
        return KerfError.internal("").status
    }
}

func argument(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw KerfError.invalidArgument(message()) }
}

// Messages (`what`) are autoclosures: they are built only when a call fails, never on the
// hot path of a successful one.

/// The set of live handles, so that NULL, freed or foreign pointers are reported instead of
/// dereferenced. Every handle class registers itself on creation and leaves on free.
final class HandleRegistry: @unchecked Sendable {
    static let shared = HandleRegistry()
    private var live: [UnsafeRawPointer: ObjectIdentifier] = [:]
    private var lock = pthread_mutex_t()

    init() { pthread_mutex_init(&lock, nil) }

    /// Retains `object` and returns its opaque pointer.
    func register<T: AnyObject>(_ object: T) -> OpaquePointer {
        let p = Unmanaged.passRetained(object).toOpaque()
        pthread_mutex_lock(&lock)
        live[UnsafeRawPointer(p)] = ObjectIdentifier(T.self)
        pthread_mutex_unlock(&lock)
        return OpaquePointer(p)
    }

    /// The live object behind `pointer`, or an INVALID_ARGUMENT error naming `what`.
    func resolve<T: AnyObject>(_ pointer: OpaquePointer?, as type: T.Type, _ what: @autoclosure () -> String) throws -> T {
        guard let pointer else { throw KerfError.invalidArgument("\(what()) is NULL") }
        let raw = UnsafeRawPointer(pointer)
        pthread_mutex_lock(&lock)
        let kind = live[raw]
        pthread_mutex_unlock(&lock)
        guard kind == ObjectIdentifier(T.self) else {
            throw KerfError.invalidArgument("\(what()) is not a live \(T.self) handle (already freed, or never created by Kerf)")
        }
        return Unmanaged<T>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Unregisters and releases; unknown pointers are ignored (the free functions accept NULL).
    func release<T: AnyObject>(_ pointer: OpaquePointer?, as type: T.Type) {
        guard let pointer else { return }
        let raw = UnsafeRawPointer(pointer)
        pthread_mutex_lock(&lock)
        let kind = live[raw]
        if kind == ObjectIdentifier(T.self) { live[raw] = nil }
        pthread_mutex_unlock(&lock)
        if kind == ObjectIdentifier(T.self) { Unmanaged<T>.fromOpaque(raw).release() }
    }
}

/// Writes `value` to an out-pointer that must not be NULL.
func store<T>(_ out: UnsafeMutablePointer<T>?, _ value: T, _ what: @autoclosure () -> String) throws {
    guard let out else { throw KerfError.invalidArgument("\(what()) is NULL") }
    out.pointee = value
}

/// A C string argument that must not be NULL.
func string(_ p: UnsafePointer<CChar>?, _ what: @autoclosure () -> String) throws -> String {
    guard let p else { throw KerfError.invalidArgument("\(what()) is NULL") }
    return String(cString: p)
}

/// `count` C strings (none NULL) as Swift strings.
func strings(_ p: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int, _ what: String) throws -> [String] {
    try argument(count >= 0 && count < 1 << 24, "\(what) count \(count) is out of range")
    if count == 0 { return [] }
    try argument(p != nil, "\(what) is NULL but its count is \(count)")
    return try (0..<count).map { try string(p![$0], "\(what)[\($0)]") }
}

/// Hands `text` to C as a malloc'ed NUL-terminated string (freed with kerf_free); a NULL
/// out-pointer means the caller does not want it.
func storeString(_ text: String, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) throws {
    guard let out else { return }
    guard let copy = strdup(text) else { throw KerfError.outOfMemory("cannot allocate \(text.utf8.count) bytes") }
    out.pointee = copy
}

/// A C progress callback (`kerf_progress_fn`: 0 continues, anything else cancels) as a
/// `ProgressHandler` (nil when the callback is NULL).
func progressHandler(_ fn: kerf_progress_fn?, _ user: UnsafeMutableRawPointer?) -> ProgressHandler? {
    guard let fn else { return nil }
    return { done, total, message in message.withCString { fn(user, Int64(done), Int64(total), $0) == 0 } }
}

/// Feeds from a C callback that stores a new tensor for each of `names` (C's `count` of them)
/// in its output array: `call(names, outputs)` returns its status; below 0 fails the call
/// (the message names the `callback` and the `position`, e.g. "batch 3"), 0 means there are no
/// more (nil). Kerf owns every tensor stored, whatever the status.
func feedsFromCallback(names: [String], callback: String, _ position: @autoclosure () -> String,
                       _ call: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafeMutablePointer<OpaquePointer?>?) -> Int32) throws -> [String: Tensor]? {
    let cNames = names.map { strdup($0) }
    defer { cNames.forEach { free($0) } }
    var handles = [OpaquePointer?](repeating: nil, count: names.count)
    let status = cNames.map { UnsafePointer($0) }.withUnsafeBufferPointer { namePointers in
        handles.withUnsafeMutableBufferPointer { call(namePointers.baseAddress, $0.baseAddress) }
    }
    defer { for h in handles { HandleRegistry.shared.release(h, as: TensorHandle.self) } }
    if status < 0 { throw KerfError.invalidArgument("the \(callback) callback failed at \(position()) (returned \(status))") }
    if status == 0 { return nil }
    var feeds: [String: Tensor] = [:]
    for (k, name) in names.enumerated() {
        feeds[name] = try HandleRegistry.shared.resolve(handles[k], as: TensorHandle.self, "\(callback) input '\(name)' of \(position())").tensor
    }
    return feeds
}
