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

    /// Allocates `byteCount` zeroed bytes.
    public init(byteCount: Int) {
        self.byteCount = byteCount
        pointer = StoragePool.shared.allocate(byteCount: byteCount)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
        release = nil
    }

    /// Allocates `byteCount` bytes without clearing them: the caller writes all of them.
    public init(uninitializedByteCount byteCount: Int) {
        self.byteCount = byteCount
        pointer = StoragePool.shared.allocate(byteCount: byteCount)
        release = nil
    }

    /// Borrows `pointer`; `release` runs once when the storage is deallocated.
    public init(borrowing pointer: UnsafeMutableRawPointer, byteCount: Int, release: (() -> Void)?) {
        self.pointer = pointer
        self.byteCount = byteCount
        self.release = release ?? {}
        self.isBorrowed = true
    }

    public private(set) var isBorrowed = false

    deinit {
        if isBorrowed {
            release?()
        } else {
            StoragePool.shared.release(pointer, byteCount: byteCount, keep: pooled.load(ordering: .relaxed))
        }
    }

    /// Marks the bytes as long-lived: when the storage dies they are freed, not kept by
    /// `StoragePool` for reuse (which would hold them for as long as the process runs).
    /// Graph initializers call this. Thread-safe.
    public func keepOutOfPool() { pooled.store(false, ordering: .relaxed) }

    /// A new owned copy of these bytes.
    public func copy() -> TensorStorage {
        let s = TensorStorage(uninitializedByteCount: byteCount)
        s.pointer.copyMemory(from: pointer, byteCount: byteCount)
        return s
    }
}
