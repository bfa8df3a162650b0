#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Reuses tensor buffers, so that a session's steady-state runs take their activations from
/// here instead of the system (glibc serves big allocations with fresh mmaps: without reuse every
/// run would fault in and zero its activation pages again; small ones would cost a malloc each).
/// Buffers are rounded up to a size class (64 bytes at least; four classes per power of two, so
/// at most 25% larger than asked) and, when freed, kept in per-class free lists up to
/// `capacityBytes` in total; the rest goes back to the system. Coarse classes let the layers of
/// a network share buffers of nearly the same size instead of each caching its own.
/// Thread-safe. Memory is never handed out twice: a buffer is either in a list or in use.
final class StoragePool: @unchecked Sendable {
    static let shared = StoragePool()
    static let capacityBytes = 512 << 20

    /// The free buffers of each size class, at `listIndex(size)` (an array of arrays pops and
    /// appends in place; a dictionary of arrays would copy a list on every change).
    /// (Behind pointers, as `cached`, the bytes held in the lists: no exclusivity checks on class properties.)
    private let lists: UnsafeMutablePointer<[UnsafeMutableRawPointer]> = {
        let p = UnsafeMutablePointer<[UnsafeMutableRawPointer]>.allocate(capacity: 4 * Int.bitWidth)
        p.initialize(repeating: [], count: 4 * Int.bitWidth)
        return p
    }()
    private let cached: UnsafeMutablePointer<Int> = {
        let p = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    /// A spin lock: the sections it guards are a few instructions long, and a mutex would cost
    /// more than the malloc it replaces for small buffers.
    private let locked = Atomic<Bool>(false)

    private init() {}

    /// How many buffers `allocate` took from the system (not from a free list), ever.
    let systemAllocations = Atomic<Int>(0)

    private func lock() {
        while !locked.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            while locked.load(ordering: .relaxed) { sched_yield() }
        }
    }

    private func unlock() { locked.store(false, ordering: .releasing) }

    /// The size class of a request (0 = not pooled).
    static func sizeClass(_ byteCount: Int) -> Int {
        if byteCount <= 0 { return 0 }
        let octave = 1 << (Int.bitWidth - 1 - byteCount.leadingZeroBitCount)  // largest power of 2 <= byteCount
        let step = max(64, octave / 4)  // from 64 KiB on, a whole number of pages
        return (byteCount + step - 1) / step * step
    }

    /// A distinct small number per size class: 0, 1, 2 for 64, 128, 192 bytes, then four per
    /// power of two.
    static func listIndex(_ size: Int) -> Int {
        if size < 256 { return size / 64 - 1 }
        let log = Int.bitWidth - 1 - size.leadingZeroBitCount, octave = 1 << log
        return 3 + (log - 8) * 4 + (size - octave) / (octave / 4)
    }

    /// Bytes this pool holds from the system: buffers in use and buffers in the free lists.
    let heldBytes = Atomic<Int>(0)

    /// A 64-byte aligned buffer of at least `byteCount` bytes (contents undefined), taken from a
    /// free list or from the system. A system allocation is checked first against
    /// `MemoryLimit.processBytes` (with what the pool already holds; the free lists are dropped
    /// when that makes room). Throws `.outOfMemory` naming `what` when the buffer would pass the
    /// limit or the system refuses the memory; `byteCount` must be non-negative.
    func allocate(byteCount: Int, for what: @autoclosure () -> String) throws -> UnsafeMutableRawPointer {
        let limit = MemoryLimit.processBytes
        // Before the size class, whose rounding could overflow.
        guard byteCount <= limit else { throw MemoryLimit.refusal(what(), needs: byteCount, limit: limit) }
        let size = Self.sizeClass(byteCount)
        if size > 0 {
            lock()
            if let p = lists[Self.listIndex(size)].popLast() {
                cached.pointee -= size
                unlock()
                return p
            }
            unlock()
        }
        let bytes = max(size, byteCount, 1)
        if heldBytes.load(ordering: .relaxed) + bytes > limit {
            trim()
            let held = heldBytes.load(ordering: .relaxed)
            guard held + bytes <= limit else { throw MemoryLimit.refusal(what(), needs: byteCount, limit: limit, held: held) }
        }
        var p: UnsafeMutableRawPointer? = nil
        if posix_memalign(&p, 64, bytes) != 0 {
            trim()
            if posix_memalign(&p, 64, bytes) != 0 { p = nil }
        }
        guard let p else {
            throw KerfError.outOfMemory("\(what()) needs \(MemoryLimit.format(byteCount)), which the system refused")
        }
        heldBytes.add(bytes, ordering: .relaxed)
        systemAllocations.add(1, ordering: .relaxed)
        return p
    }

    /// Takes back a buffer from `allocate` with the same `byteCount`: kept for reuse when `keep`
    /// and there is room, else freed.
    func release(_ pointer: UnsafeMutableRawPointer, byteCount: Int, keep: Bool = true) {
        let size = Self.sizeClass(byteCount)
        if size > 0 && keep {
            lock()
            if cached.pointee + size <= Self.capacityBytes {
                lists[Self.listIndex(size)].append(pointer)
                cached.pointee += size
                unlock()
                return
            }
            unlock()
        }
        free(pointer)
        heldBytes.subtract(max(size, byteCount, 1), ordering: .relaxed)
    }

    /// Gives every buffer of the free lists back to the system.
    func trim() {
        lock()
        var freed: [UnsafeMutableRawPointer] = [], bytes = 0
        for i in 0..<(4 * Int.bitWidth) where !lists[i].isEmpty {
            freed += lists[i]
            lists[i].removeAll()
        }
        bytes = cached.pointee
        cached.pointee = 0
        unlock()
        for p in freed { free(p) }
        heldBytes.subtract(bytes, ordering: .relaxed)
    }
}
