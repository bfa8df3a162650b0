import Synchronization

/// A growable, 64-byte aligned byte buffer lent by `ScratchPool`.
public final class ScratchBuffer: @unchecked Sendable {
    public private(set) var pointer: UnsafeMutableRawPointer?
    private var capacity = 0

    /// Makes room for at least `bytes` bytes (contents undefined).
    public func reserve(_ bytes: Int) {
        guard bytes > capacity else { return }
        pointer?.deallocate()
        pointer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        capacity = bytes
    }

    deinit { pointer?.deallocate() }
}

/// Scratch shared by every kernel that lends from it: a computation takes one buffer per worker
/// and gives them back when done, so a network holds the scratch of its largest layer only
/// (times the workers running at once), not of every layer. Thread-safe.
public final class ScratchPool: Sendable {
    public static let shared = ScratchPool()
    private let free = Mutex<[ScratchBuffer]>([])

    /// `count` buffers, each lent to one caller until `give`.
    public func take(_ count: Int) -> [ScratchBuffer] {
        var taken = free.withLock { free in
            let n = min(count, free.count)
            defer { free.removeLast(n) }
            return Array(free.suffix(n))
        }
        while taken.count < count { taken.append(ScratchBuffer()) }
        return taken
    }

    public func give(_ buffers: [ScratchBuffer]) {
        free.withLock { $0.append(contentsOf: buffers) }
    }

    /// One buffer, lent until `give(_:)` (no array made: for the per-run paths of small models).
    public func take() -> ScratchBuffer {
        free.withLock { $0.popLast() } ?? ScratchBuffer()
    }

    public func give(_ buffer: ScratchBuffer) {
        free.withLock { $0.append(buffer) }
    }
}
