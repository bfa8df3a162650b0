import KerfCore
import KerfCShims
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

/// Version of the library; the ABI version is include/kerf.h's KERF_ABI_VERSION.
let kerfVersion = "0.1.0"
private let versionCString: UnsafeMutablePointer<CChar> = strdup(kerfVersion)
private let instructionSetCString: UnsafeMutablePointer<CChar> = strdup(InstructionSet.inUse.name)

@c @implementation
public func kerf_version() -> UnsafePointer<CChar>? { UnsafePointer(versionCString) }

@c @implementation
public func kerf_abi_version() -> UInt32 { kerf_shim_abi_version() }

@c @implementation
public func kerf_instruction_set() -> UnsafePointer<CChar>? { UnsafePointer(instructionSetCString) }

@c @implementation
public func kerf_free(_ buffer: UnsafeMutableRawPointer?) { free(buffer) }

@c @implementation
public func kerf_set_memory_limit(_ bytes: UInt64) {
    MemoryLimit.processBytes = bytes > UInt64(Int.max) ? Int.max : Int(bytes)
}

@c @implementation
public func kerf_memory_limit() -> UInt64 { UInt64(MemoryLimit.processBytes) }
