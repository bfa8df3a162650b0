#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The allocation limit: how many bytes of tensor memory Kerf may hold, checked before every
/// tensor allocation (model loading, session creation and runs), so that a model asking for
/// more memory than there is fails with `KerfError.outOfMemory` instead of killing the process.
///
/// Two bounds, both in bytes:
/// - the process-wide limit (`processBytes`, default `defaultBytes`: 80% of physical memory)
///   bounds all tensor memory Kerf holds from the system in this process: live tensors, weights
///   and the buffers `StoragePool` keeps for reuse (dropped first when the limit is near);
/// - a session's limit (`SessionOptions.memoryLimit`, made current on the creating or running
///   thread by `withBudget`) bounds the tensors that session allocates and that are still alive
///   (its activations, outputs not yet freed, prepared weights), whatever other sessions hold.
///
/// Tensors whose bytes are the caller's (borrowed), strings, and the kernels' scratch buffers are
/// not counted.
public enum MemoryLimit {
    /// 80% of physical memory, in bytes (Int.max when the size of memory is unknown).
    public static let defaultBytes: Int = PhysicalMemory.byteCount == Int.max ? Int.max : PhysicalMemory.byteCount / 5 * 4

    private static let process = Atomic<Int>(defaultBytes)

    /// The process-wide limit in bytes; setting 0 restores `defaultBytes`. Thread-safe; lowering
    /// it does not free anything already allocated, it refuses the allocations that follow.
    public static var processBytes: Int {
        get { process.load(ordering: .relaxed) }
        set { process.store(newValue > 0 ? newValue : defaultBytes, ordering: .relaxed) }
    }

    /// The budget of the session creating or running on this thread (nil: none).
    static var currentBudget: MemoryBudget? {
        guard let p = pthread_getspecific(budgetKey) else { return nil }
        return Unmanaged<MemoryBudget>.fromOpaque(p).takeUnretainedValue()
    }

    private static let budgetKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Runs `body` with `budget` charged for the tensors this thread allocates (nil: no session
    /// budget), then restores the previous one. Tensors made on other threads (kernel workers) are
    /// checked against the process-wide limit only.
    public static func withBudget<R>(_ budget: MemoryBudget?, _ body: () throws -> R) rethrows -> R {
        guard budget != nil else { return try body() }
        let scope = enter(budget)
        defer { leave(scope) }
        return try body()
    }

    /// What `enter` replaced, for `leave`.
    public struct Scope { fileprivate let previous: UnsafeMutableRawPointer?; fileprivate let changed: Bool }

    /// `withBudget` for code that cannot be a closure (an initializer): makes `budget` current on
    /// this thread until `leave` with the returned scope (nil changes nothing).
    public static func enter(_ budget: MemoryBudget?) -> Scope {
        guard let budget else { return Scope(previous: nil, changed: false) }
        let previous = pthread_getspecific(budgetKey)
        pthread_setspecific(budgetKey, Unmanaged.passUnretained(budget).toOpaque())
        return Scope(previous: previous, changed: true)
    }

    public static func leave(_ scope: Scope) {
        if scope.changed { pthread_setspecific(budgetKey, scope.previous) }
    }

    /// Throws `.outOfMemory` when one allocation of `byteCount` bytes could never fit: more than
    /// the process-wide limit or the current session's. `what` names the tensor ("a tensor
    /// [100000, 100000] of float"). Shapes a model declares are checked with this before any
    /// work depends on them; the allocation itself checks again with what is already held.
    public static func check(byteCount: Int, for what: @autoclosure () -> String) throws {
        let limit = Swift.min(processBytes, currentBudget?.limit ?? Int.max)
        guard byteCount >= 0, byteCount <= limit else { throw refusal(what(), needs: byteCount, limit: limit) }
    }

    /// The error for a request of `needs` bytes (negative: more than Int can count) over `limit`
    /// bytes, `held` of them in use.
    public static func refusal(_ what: String, needs: Int, limit: Int, held: Int? = nil) -> KerfError {
        let size = needs < 0 ? "more bytes than can be counted" : format(needs)
        var m = "\(what) needs \(size); the allocation limit is \(format(limit))"
        if let held { m += ", of which \(format(held)) is in use" }
        return .outOfMemory(m)
    }

    /// `bytes` for a person: "40 GB", "3.5 MB", "512 bytes" (powers of 1024).
    public static func format(_ bytes: Int) -> String {
        if bytes == Int.max { return "unlimited" }
        let units = ["bytes", "KB", "MB", "GB", "TB", "PB", "EB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        if unit == 0 { return "\(bytes) bytes" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded)) \(units[unit])" : "\(rounded) \(units[unit])"
    }
}

/// A session's share of tensor memory: `limit` bytes, charged by each tensor allocated while it
/// is current (`MemoryLimit.withBudget`) and given back when that tensor's storage dies.
/// Thread-safe.
public final class MemoryBudget: @unchecked Sendable {
    /// Bytes; Int.max for no limit.
    public let limit: Int
    private let used = Atomic<Int>(0)

    public init(limit: Int) { self.limit = limit }

    /// Bytes charged and not yet given back.
    public var usedBytes: Int { used.load(ordering: .relaxed) }

    /// Charges `byteCount` bytes, or throws `.outOfMemory` naming `what` (nothing charged) when
    /// that would exceed `limit`; `force` charges without checking (copies of existing tensors).
    func charge(_ byteCount: Int, for what: @autoclosure () -> String, force: Bool = false) throws {
        let after = used.add(byteCount, ordering: .relaxed).newValue
        if force || after <= limit { return }
        used.subtract(byteCount, ordering: .relaxed)
        throw MemoryLimit.refusal(what(), needs: byteCount, limit: limit, held: after - byteCount)
    }

    func refund(_ byteCount: Int) { used.subtract(byteCount, ordering: .relaxed) }
}
