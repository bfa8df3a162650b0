#if canImport(Glibc)
import Glibc
#endif

/// The machine's physical memory, as a bound for allocations whose size a model declares
/// without holding the bytes (a sparse initializer's dense form): such a request larger than
/// the whole memory can only end in a failed allocation, which aborts the process.
enum PhysicalMemory {
    /// Bytes of physical memory (sysconf); Int.max when unknown.
    static let byteCount: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return Int.max }
        let (bytes, overflow) = pages.multipliedReportingOverflow(by: pageSize)
        return overflow ? Int.max : bytes
    }()

    /// Throws `.outOfMemory` naming `what` when `byteCount` exceeds the physical memory.
    static func check(byteCount: Int, for what: String) throws {
        guard byteCount <= Self.byteCount else {
            throw KerfError.outOfMemory("\(what) needs \(byteCount) bytes, more than this machine's \(Self.byteCount) bytes of memory")
        }
    }
}
