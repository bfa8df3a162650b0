import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

/// Version of the library; the ABI version lives in include/kerf.h.
let kerfVersion = "0.1.0"
let abiVersion: UInt32 = (1 << 16) | 7
private let versionCString: UnsafeMutablePointer<CChar> = strdup(kerfVersion)
private let instructionSetCString: UnsafeMutablePointer<CChar> = strdup(InstructionSet.inUse.name)

@_cdecl("kerf_version")
public func kerf_version() -> UnsafePointer<CChar> { UnsafePointer(versionCString) }

@_cdecl("kerf_abi_version")
public func kerf_abi_version() -> UInt32 { abiVersion }

@_cdecl("kerf_instruction_set")
public func kerf_instruction_set() -> UnsafePointer<CChar> { UnsafePointer(instructionSetCString) }

@_cdecl("kerf_free")
public func kerf_free(_ buffer: UnsafeMutableRawPointer?) { free(buffer) }

@_cdecl("kerf_set_memory_limit")
public func kerf_set_memory_limit(_ bytes: UInt64) {
    MemoryLimit.processBytes = bytes > UInt64(Int.max) ? Int.max : Int(bytes)
}

@_cdecl("kerf_memory_limit")
public func kerf_memory_limit() -> UInt64 { UInt64(MemoryLimit.processBytes) }
