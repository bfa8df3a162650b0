import KerfCKernels

/// The instruction-set levels of Kerf's kernel variants (KerfCKernels/include/kerf_isa.h), in
/// order: each includes the ones below. Every kernel family with vector variants picks the
/// highest one the level in use allows and otherwise runs its reference loops.
///
/// The level in use is the CPU's, capped by the environment variable `KERF_MAX_ISA` (a `name`,
/// read once when the library loads; it caps oneDNN too). Tests lower it in-process with
/// `withCap` to run every variant the CPU has against the reference.
public enum InstructionSet: Int32, CaseIterable, Sendable, Comparable {
    case scalar = 0, avx2, avxVNNI, avx512, avx512VNNI

    /// The name `KERF_MAX_ISA` takes: "scalar", "avx2", "avx_vnni", "avx512", "avx512_vnni".
    public var name: String { String(cString: kerf_isa_name(rawValue)) }

    /// The highest level this CPU supports.
    public static var cpu: InstructionSet { InstructionSet(rawValue: kerf_isa_cpu_level()) ?? .scalar }

    /// The level Kerf's kernels run at now.
    public static var inUse: InstructionSet { InstructionSet(rawValue: kerf_isa_level()) ?? .scalar }

    /// Every level up to the CPU's: the variants a test can run here.
    public static var supported: [InstructionSet] { allCases.filter { $0 <= cpu } }

    /// Runs `body` with Kerf's own kernels capped at `level` (oneDNN keeps its level), then
    /// restores the level in use. No kernel may run on another thread meanwhile. Weights
    /// packed under one level must be used under the same level.
    public static func withCap<R>(_ level: InstructionSet, _ body: () throws -> R) rethrows -> R {
        let previous = inUse
        kerf_isa_set_cap(level.rawValue)
        defer { kerf_isa_set_cap(previous.rawValue) }
        return try body()
    }

    public static func < (a: InstructionSet, b: InstructionSet) -> Bool { a.rawValue < b.rawValue }
}

/// True when the AVX2 + FMA C kernels may run.
@usableFromInline var cpuHasAVX2: Bool { kerf_isa_has(Int32(KERF_HAS_AVX2)) != 0 }

/// True when the sixteen-lane AVX-512 (F, BW, VL) C kernels may run.
@usableFromInline var cpuHasAVX512: Bool { kerf_isa_has(Int32(KERF_HAS_AVX512)) != 0 }

/// True when the AVX-512 kernels with byte masks may run (the same features as `cpuHasAVX512`).
public var cpuHasAVX512BW: Bool { cpuHasAVX512 }

/// True when the AVX-512 VBMI byte permutes may run.
var cpuHasAVX512VBMI: Bool { kerf_isa_has(Int32(KERF_HAS_AVX512_VBMI)) != 0 }
