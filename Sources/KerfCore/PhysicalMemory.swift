#if canImport(Glibc)
import Glibc
#endif

/// The machine's physical memory: `MemoryLimit.defaultBytes` is a share of it.
enum PhysicalMemory {
    /// Bytes of physical memory (sysconf); Int.max when unknown.
    static let byteCount: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return Int.max }
        let (bytes, overflow) = pages.multipliedReportingOverflow(by: pageSize)
        return overflow ? Int.max : bytes
    }()
}
