#if canImport(Glibc)
import Glibc
#endif

/// Reuses large tensor buffers. glibc serves big allocations with fresh mmaps, so without
/// reuse every run of a session would fault in (and zero) all its activation pages again.
/// Buffers of at least `minimumBytes` are rounded up to a size class (four per power of two, so
/// at most 25% larger than asked) and, when freed, kept in per-class free lists up to
/// `capacityBytes` in total; the rest goes back to the system. Coarse classes let the layers of
/// a network share buffers of nearly the same size instead of each caching its own.
/// Thread-safe. Memory is never handed out twice: a buffer is either in a list or in use.
final class StoragePool: @unchecked Sendable {
    static let shared = StoragePool()
    static let minimumBytes = 64 << 10
    static let capacityBytes = 512 << 20

    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var cachedBytes = 0
    private var lock = pthread_mutex_t()

    private init() { pthread_mutex_init(&lock, nil) }

    /// The size class of a request (0 = not pooled).
    static func sizeClass(_ byteCount: Int) -> Int {
        if byteCount < minimumBytes { return 0 }
        let octave = 1 << (Int.bitWidth - 1 - byteCount.leadingZeroBitCount)  // largest power of 2 <= byteCount
        let step = octave / 4  // >= 16 KiB: a whole number of pages
        return (byteCount + step - 1) / step * step
    }

    /// A 64-byte aligned buffer of at least `byteCount` bytes (contents undefined).
    func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        let size = Self.sizeClass(byteCount)
        if size > 0 {
            pthread_mutex_lock(&lock)
            if let p = free[size]?.popLast() {
                cachedBytes -= size
                pthread_mutex_unlock(&lock)
                return p
            }
            pthread_mutex_unlock(&lock)
        }
        return UnsafeMutableRawPointer.allocate(byteCount: max(size, byteCount, 1), alignment: 64)
    }

    /// Takes back a buffer from `allocate` with the same `byteCount`: kept for reuse when `keep`
    /// and there is room, else freed.
    func release(_ pointer: UnsafeMutableRawPointer, byteCount: Int, keep: Bool = true) {
        let size = Self.sizeClass(byteCount)
        if size > 0 && keep {
            pthread_mutex_lock(&lock)
            if cachedBytes + size <= Self.capacityBytes {
                free[size, default: []].append(pointer)
                cachedBytes += size
                pthread_mutex_unlock(&lock)
                return
            }
            pthread_mutex_unlock(&lock)
        }
        pointer.deallocate()
    }
}
