import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

/// Version of the library; the ABI version lives in include/kerf.h.
let kerfVersion = "0.1.0"
let abiVersion: UInt32 = (1 << 16) | 6
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
