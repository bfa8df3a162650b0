import Synchronization

/// A block of tensor element bytes: owned (allocated by Kerf, 64-byte aligned) or borrowed
/// (memory of the caller's, given back through `release` when the storage dies).
///
/// Owned bytes come from `StoragePool`, and go back to it when the storage dies (so that the
/// next run of a session finds its activation buffers) unless `keepOutOfPool()` was called:
/// bytes of a long-lived tensor, such as a weight, go back to the system instead.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    private let release: (() -> Void)?
    private let pooled = Atomic<Bool>(true)
    /// The session budget these bytes were charged to (`MemoryLimit.withBudget`), given back at death.
    private let budget: MemoryBudget?

    /// Allocates `byteCount` zeroed bytes, checked against the allocation limit (`MemoryLimit`).
    /// Throws `.outOfMemory` naming `what` (e.g. "a tensor [2, 3] of float") when they would pass
    /// it or the system refuses them.
    public convenience init(byteCount: Int, for what: @autoclosure () -> String = "a tensor") throws {
        try self.init(uninitializedByteCount: byteCount, for: what())
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
    }

    /// Allocates `byteCount` bytes without clearing them (the caller writes all of them), checked
    /// as `init(byteCount:for:)`.
    public init(uninitializedByteCount byteCount: Int, for what: @autoclosure () -> String = "a tensor") throws {
        guard byteCount >= 0 else { throw KerfError.internal("\(what()): negative byte count \(byteCount)") }
        let budget = MemoryLimit.currentBudget
        try budget?.charge(byteCount, for: what())
        do {
            pointer = try StoragePool.shared.allocate(byteCount: byteCount, for: what())
        } catch {
            budget?.refund(byteCount)
            throw error
        }
        self.byteCount = byteCount
        self.budget = budget
        release = nil
    }

    /// Allocates `byteCount` bytes for a copy of memory that already exists (so the size is not a
    /// model's to choose): charged, not refused, by the session budget; stops the process if the
    /// system refuses the memory.
    init(copyingByteCount byteCount: Int) {
        let budget = MemoryLimit.currentBudget
        try? budget?.charge(byteCount, for: "", force: true)
        do {
            pointer = try StoragePool.shared.allocate(byteCount: byteCount, for: "a copy of a tensor")
        } catch {
            fatalError("\(error)")
        }
        self.byteCount = byteCount
        self.budget = budget
        release = nil
    }

    /// Borrows `pointer`; `release` runs once when the storage is deallocated.
    public init(borrowing pointer: UnsafeMutableRawPointer, byteCount: Int, release: (() -> Void)?) {
        self.pointer = pointer
        self.byteCount = byteCount
        self.release = release ?? {}
        self.isBorrowed = true
        self.budget = nil
    }

    public private(set) var isBorrowed = false

    deinit {
        if isBorrowed {
            release?()
        } else {
            StoragePool.shared.release(pointer, byteCount: byteCount, keep: pooled.load(ordering: .relaxed))
            budget?.refund(byteCount)
        }
    }

    /// Marks the bytes as long-lived: when the storage dies they are freed, not kept by
    /// `StoragePool` for reuse (which would hold them for as long as the process runs).
    /// Graph initializers call this. Thread-safe.
    public func keepOutOfPool() { pooled.store(false, ordering: .relaxed) }

    /// A new owned copy of these bytes (see `init(copyingByteCount:)`).
    public func copy() -> TensorStorage {
        let s = TensorStorage(copyingByteCount: byteCount)
        s.pointer.copyMemory(from: pointer, byteCount: byteCount)
        return s
    }
}
