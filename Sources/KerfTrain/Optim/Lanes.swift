import KerfKernels
#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

/// Eight float32 lanes: the vector the update kernels work in (one AVX2 register). The last
/// chunk of a buffer is padded with zeros, so every element goes through the same
/// instructions whatever its position.
typealias Lanes = SIMD8<Float>

/// Lanes 0..<n read from `p` (n in 1...8), the others zero.
@inline(__always)
func loadLanes(_ p: UnsafePointer<Float>, _ n: Int) -> Lanes {
    if n == Lanes.scalarCount { return UnsafeRawPointer(p).loadUnaligned(as: Lanes.self) }
    var v = Lanes()
    for k in 0..<n { v[k] = p[k] }
    return v
}

/// Writes lanes 0..<n of `v` to `p` (n in 1...8).
@inline(__always)
func storeLanes(_ v: Lanes, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    if n == Lanes.scalarCount {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self)
    } else {
        for k in 0..<n { p[k] = v[k] }
    }
}

/// Calls body(offset, n) for consecutive chunks of `range`: n = 8 but for the last chunk.
@inline(__always)
func forEachChunk(_ range: Range<Int>, _ body: (_ offset: Int, _ n: Int) -> Void) {
    var i = range.lowerBound
    while i + Lanes.scalarCount <= range.upperBound {
        body(i, Lanes.scalarCount)
        i += Lanes.scalarCount
    }
    if i < range.upperBound { body(i, range.upperBound - i) }
}

/// The correctly rounded square roots of the lanes, in one instruction where there is one
/// (`SIMD.squareRoot()` takes eight scalar roots).
@inline(__always)
func squareRoot(_ v: Lanes) -> Lanes {
    #if arch(x86_64)
    return _mm256_sqrt_ps(v)
    #else
    return v.squareRoot()
    #endif
}

/// Elements per task of the threaded update kernels: below two of these a buffer is updated
/// on the calling thread.
let updateGrain = 1 << 15

/// Runs body over 0..<count split into ranges on the calling thread's OpenMP team (`teamRanges`:
/// the team oneDNN's primitives run on, whose threads would otherwise spin beside a second pool;
/// its size is the session's thread count). `threads` is kept for the callers' contract.
/// The kernels are elementwise, so results do not depend on the split.
@inline(__always)
func forEachRange(_ count: Int, threads: Int, _ body: (Range<Int>) -> Void) {
    teamRanges(count, grain: updateGrain, body)
}
