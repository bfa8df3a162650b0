/// A block of tensor element bytes: owned (allocated by Kerf, 64-byte aligned) or borrowed
/// (memory of the caller's, given back through `release` when the storage dies).
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    private let release: (() -> Void)?

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
        if isBorrowed { release?() } else { StoragePool.shared.release(pointer, byteCount: byteCount) }
    }

    /// A new owned copy of these bytes.
    public func copy() -> TensorStorage {
        let s = TensorStorage(uninitializedByteCount: byteCount)
        s.pointer.copyMemory(from: pointer, byteCount: byteCount)
        return s
    }
}
