import KerfCKernels

// The int8 GEMM: C[M, N] (int32) = Σ_k (A[i, k] - aZero) * (B[k, j] - bZero[j]).
//
// B (the weight) is packed once into 16-column panels (`PackedInt8Weights`); A is packed per
// call. Two layouts, chosen by the activation type:
//  - `.u8s8` (int8 B): raw u8 x s8 products through vpmaddubsw, zero points corrected
//    afterwards with row and column sums; int8 A is shifted to uint8 (+128, its zero point too).
//    Without VNNI, the products of each k pair (2t, 2t+1) are added with int16 saturation first
//    — exactly what ONNX Runtime's MLAS QGEMM does on this kind of CPU (for int8 activations
//    too: it shifts them the same way), so both runtimes agree bit for bit; `int8GemmReference`
//    models it. With VNNI (vpdpbusd) the sums are exact, as MLAS's are there
//    (`int8GemmSaturatesPairs` tells which).
//  - `.wide`: A - aZero and B - bZero widened to int16 and multiplied with vpmaddwd: exact,
//    about 0.8x the speed (measured here, AVX2 without VNNI). For operands the u8s8 form cannot
//    take (uint8 B) and, without VNNI, where ONNX Runtime is exact (its MatMulInteger with int8 A).
// Without AVX2 every product runs `int8GemmReference`.

/// How packed weights are laid out (see the file comment).
public enum Int8GemmLayout: Sendable {
    case u8s8
    case wide
}

/// True when the AVX2 kernels may run (`InstructionSet.inUse`).
public var int8GemmAccelerated: Bool { cpuHasAVX2 }

/// True when vpdpbusd (AVX512-VNNI or AVX-VNNI) may run: the `.u8s8` layout is then exact.
public var int8GemmHasVNNI: Bool { kerf_qgemm_vnni_available() != 0 }

/// Whether `.u8s8` products saturate in k pairs (AVX2 without VNNI; see the file comment).
/// Where they do not, `.u8s8` is exact and the faster choice for every int8 weight.
public var int8GemmSaturatesPairs: Bool { !int8GemmHasVNNI }

/// A constant integer weight B (logical [K, N]) packed for `int8Gemm`, with its zero points.
/// Immutable after init; safe to share between threads.
public final class PackedInt8Weights: @unchecked Sendable {
    public let k: Int
    public let n: Int
    public let layout: Int8GemmLayout
    /// Zero point of B per column (`n` entries).
    public let zeroPoints: [Int32]
    /// Σ_k B[k, j] per column (`.u8s8` only; raw values, zero point not removed).
    let columnSums: [Int32]
    /// True when `columnOffsets` gives the zero-point correction.
    public let correctsByColumn: Bool
    /// k groups per panel: 4 k per group (`.u8s8`) or 2 (`.wide`).
    let groups: Int
    let panels: UnsafeMutableRawPointer
    var panelCount: Int { (n + 15) / 16 }

    /// Packs B, whose element (k, j) is `b[k * rowStride + j * columnStride]` (so a B stored
    /// transposed, [N, K], has rowStride 1 and columnStride K). `zeroPoints` has 1 or `n`
    /// entries.
    public convenience init(_ b: UnsafePointer<Int8>, k: Int, n: Int, rowStride: Int, columnStride: Int,
                            zeroPoints: [Int32], layout: Int8GemmLayout) {
        self.init(bytes: UnsafeRawPointer(b), signed: true, k: k, n: n, rowStride: rowStride, columnStride: columnStride,
                  zeroPoints: zeroPoints, layout: layout)
    }

    /// The uint8 form of `init(_:k:n:rowStride:columnStride:zeroPoints:layout:)`: `.wide` only.
    public convenience init(_ b: UnsafePointer<UInt8>, k: Int, n: Int, rowStride: Int, columnStride: Int,
                            zeroPoints: [Int32], layout: Int8GemmLayout) {
        self.init(bytes: UnsafeRawPointer(b), signed: false, k: k, n: n, rowStride: rowStride, columnStride: columnStride,
                  zeroPoints: zeroPoints, layout: layout)
    }

    /// The packing itself, on B's bytes (int8 when `signed`), without generics: it runs per call
    /// for a B computed at run time.
    public init(bytes b: UnsafeRawPointer, signed: Bool, k: Int, n: Int, rowStride: Int, columnStride: Int,
         zeroPoints: [Int32], layout: Int8GemmLayout) {
        precondition(zeroPoints.count == 1 || zeroPoints.count == n, "one zero point or one per column")
        precondition(layout == .wide || signed, "the u8s8 layout packs int8 weights")
        self.k = k
        self.n = n
        self.layout = layout
        let zeros = zeroPoints.count == n ? zeroPoints : [Int32](repeating: zeroPoints[0], count: n)
        self.zeroPoints = zeros
        correctsByColumn = layout == .u8s8 && int8GemmAccelerated && zeros.allSatisfy { $0 == 0 }
        let perGroup = layout == .u8s8 ? 4 : 2
        let groups = (k + perGroup - 1) / perGroup
        let bytes = max(1, (n + 15) / 16 * groups * 64)
        let panels = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        panels.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        self.groups = groups
        self.panels = panels
        let source = b.assumingMemoryBound(to: UInt8.self)
        var sums = [Int32](repeating: 0, count: n)
        sums.withUnsafeMutableBufferPointer { sums in
            // The panels in the order they are stored: panel, k group, column, k within the group.
            var out = panels.assumingMemoryBound(to: UInt8.self)
            for panel in 0..<((n + 15) / 16) {
                let columns = min(16, n - panel * 16)
                for group in 0..<groups {
                    let p0 = group * perGroup, depth = min(perGroup, k - p0)
                    for column in 0..<16 {
                        defer { out += 4 }
                        guard column < columns else { continue }
                        let j = panel * 16 + column
                        let base = source + p0 * rowStride + j * columnStride
                        for q in 0..<depth {
                            let byte = base[q * rowStride]
                            let v = signed ? Int32(Int8(bitPattern: byte)) : Int32(byte)
                            sums[j] &+= v
                            if layout == .u8s8 {
                                out[q] = byte
                            } else {
                                UnsafeMutableRawPointer(out).storeBytes(of: Int16(truncatingIfNeeded: v - zeros[j]), toByteOffset: q * 2, as: Int16.self)
                            }
                        }
                    }
                }
            }
        }
        columnSums = sums
    }

    deinit { panels.deallocate() }
}

/// C[i, j] = Σ_k (A[i, k] - aZeroPoint) * (B[k, j] - b.zeroPoints[j]) for i < m, j < b.n.
/// A is uint8 (`aSigned` false) or int8, row-major [m, b.k] with row stride `lda`; C is int32
/// with row stride `ldc`. Panels of columns are split over up to `threads` threads. With the
/// `.u8s8` layout k pairs saturate as described at the top of this file (without VNNI).
public func int8Gemm(m: Int, a: UnsafeRawPointer, aSigned: Bool, lda: Int, aZeroPoint: Int32, b: PackedInt8Weights,
                     c: UnsafeMutablePointer<Int32>, ldc: Int, threads: Int = 1) {
    int8Gemm(m: m, a: a, aSigned: aSigned, lda: lda, aZeroPoint: aZeroPoint, b: b, c: c, ldc: ldc, threads: threads,
             correctingZeroPoints: true)
}

/// `int8Gemm`; without `correctingZeroPoints`, where `b.correctsByColumn`, C is left without
/// `b.columnOffsets` (C &+ offsets[j] is the product).
public func int8Gemm(m: Int, a: UnsafeRawPointer, aSigned: Bool, lda: Int, aZeroPoint: Int32, b: PackedInt8Weights,
              c: UnsafeMutablePointer<Int32>, ldc: Int, threads: Int, correctingZeroPoints: Bool) {
    let k = b.k, n = b.n
    if m == 0 || n == 0 { return }
    guard int8GemmAccelerated else {
        int8GemmReference(m: m, n: n, k: k, a: a, aSigned: aSigned, lda: lda, aZeroPoint: aZeroPoint,
                          b: { p, j in b.value(p, j) }, bZeroPoints: b.zeroPoints,
                          c: c, ldc: ldc, saturatingPairs: b.layout == .u8s8 && int8GemmSaturatesPairs)
        return
    }
    let packedA = PackedActivations(m: m, a: a, aSigned: aSigned, lda: lda, aZeroPoint: aZeroPoint, b: b)
    defer { packedA.release() }
    // Contiguous runs of panels per task, a few tasks per thread so a slow thread does not hold up the rest.
    let tasks = threads > 1 ? min(b.panelCount, threads * 4) : 1
    func run(_ t: Int) {
        let p0 = b.panelCount * t / tasks, p1 = b.panelCount * (t + 1) / tasks
        if b.layout == .u8s8 && int8GemmHasVNNI {
            kerf_qgemm_u8s8_vnni(packedA.bytes.assumingMemoryBound(to: UInt8.self), packedA.stride, m, b.groups,
                                 b.panels.assumingMemoryBound(to: Int8.self), n, p0, p1, c, ldc)
        } else if b.layout == .u8s8 {
            kerf_qgemm_u8s8_avx2(packedA.bytes.assumingMemoryBound(to: UInt8.self), packedA.stride, m, b.groups,
                                 b.panels.assumingMemoryBound(to: Int8.self), n, p0, p1, c, ldc)
        } else {
            kerf_qgemm_s16_avx2(packedA.bytes.assumingMemoryBound(to: Int16.self), packedA.stride, m, b.groups,
                                b.panels.assumingMemoryBound(to: Int16.self), n, p0, p1, c, ldc)
        }
    }
    if threads > 1 && tasks > 1 { parallelForDynamic(tasks, threads: threads, run) } else { for t in 0..<tasks { run(t) } }
    if b.layout == .u8s8 && (correctingZeroPoints || !b.correctsByColumn) {
        let shifted = aZeroPoint + (aSigned ? 128 : 0)
        correctZeroPoints(m: m, a: packedA.bytes, lda: packedA.stride, aZeroPoint: shifted, b: b, c: c, ldc: ldc)
    }
}

/// Raw u8 x s8 sums -> Σ (a - za)(b - zb) = raw - za·colsum[j] - zb[j]·rowsum[i] + K·za·zb[j].
private func correctZeroPoints(m: Int, a: UnsafeRawPointer, lda: Int, aZeroPoint: Int32, b: PackedInt8Weights,
                               c: UnsafeMutablePointer<Int32>, ldc: Int) {
    let k = b.k, n = b.n
    let za = aZeroPoint
    let bZeroNonZero = b.zeroPoints.contains { $0 != 0 }
    if za == 0 && !bZeroNonZero { return }
    let au = a.assumingMemoryBound(to: UInt8.self)
    b.columnSums.withUnsafeBufferPointer { sums in
        b.zeroPoints.withUnsafeBufferPointer { zb in
            for i in 0..<m {
                var rowSum: Int32 = 0
                if bZeroNonZero { for p in 0..<k { rowSum &+= Int32(au[i * lda + p]) } }
                let row = c + i * ldc
                for j in 0..<n {
                    row[j] = row[j] &- za &* sums[j] &- zb[j] &* rowSum &+ Int32(k) &* za &* zb[j]
                }
            }
        }
    }
}

extension PackedInt8Weights {
    /// Where the zero-point correction of `.u8s8` sums is one int32 per column (B's zero points
    /// all 0, the AVX2 kernels running): -za·Σ_k B[k, j], za being A's zero point as the kernel
    /// sees it (int8 A shifted by 128). Nil otherwise (the correction, if any, needs A's rows).
    public func columnOffsets(aZeroPoint: Int32, aSigned: Bool) -> [Int32]? {
        guard correctsByColumn else { return nil }
        var offsets = [Int32](repeating: 0, count: n)
        offsets.withUnsafeMutableBufferPointer { _ = writeColumnOffsets(aZeroPoint: aZeroPoint, aSigned: aSigned, into: $0.baseAddress!) }
        return offsets
    }

    /// `columnOffsets` written into `offsets` (n int32); false (nothing written) where it is nil.
    public func writeColumnOffsets(aZeroPoint: Int32, aSigned: Bool, into offsets: UnsafeMutablePointer<Int32>) -> Bool {
        guard correctsByColumn else { return false }
        let za = aZeroPoint + (aSigned ? 128 : 0)
        columnSums.withUnsafeBufferPointer { sums in
            for j in 0..<n { offsets[j] = 0 &- za &* sums[j] }
        }
        return true
    }

    /// B[p, j] as packed (raw for `.u8s8`; for `.wide` the zero point is added back).
    func value(_ p: Int, _ j: Int) -> Int32 {
        let panel = j / 16, column = j % 16
        if layout == .u8s8 {
            let group = panel * groups + p / 4
            return Int32(panels.load(fromByteOffset: group * 64 + column * 4 + p % 4, as: Int8.self))
        }
        let group = panel * groups + p / 2
        return Int32(panels.load(fromByteOffset: group * 64 + (column * 2 + p % 2) * 2, as: Int16.self)) + zeroPoints[j]
    }
}

/// A copied into the kernel's row format: for `.u8s8`, uint8 rows of 4·groups bytes (zero
/// padded; int8 A shifted by 128; uint8 A itself when K is a multiple of 4); for `.wide`, int16 rows of A - aZeroPoint,
/// 2·groups long.
private struct PackedActivations {
    let bytes: UnsafeRawPointer
    let stride: Int
    private let owned: UnsafeMutableRawPointer?

    init(m: Int, a: UnsafeRawPointer, aSigned: Bool, lda: Int, aZeroPoint: Int32, b: PackedInt8Weights) {
        if b.layout == .u8s8 {
            let width = b.groups * 4
            if width == b.k && !aSigned {
                bytes = a
                stride = lda
                owned = nil
                return
            }
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: m * width, alignment: 64)
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: m * width)
            for i in 0..<m {
                let dst = (buffer + i * width).assumingMemoryBound(to: UInt8.self), src = (a + i * lda).assumingMemoryBound(to: UInt8.self)
                if aSigned { for p in 0..<b.k { dst[p] = src[p] ^ 0x80 } } else { dst.update(from: src, count: b.k) }
            }
            bytes = UnsafeRawPointer(buffer)
            stride = width
            owned = buffer
            return
        }
        let width = b.groups * 2
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(1, m * width * 2), alignment: 64)
        let dst = buffer.assumingMemoryBound(to: Int16.self)
        let za = Int16(aZeroPoint)
        for i in 0..<m {
            let row = dst + i * width
            if aSigned {
                let src = a.assumingMemoryBound(to: Int8.self) + i * lda
                for p in 0..<b.k { row[p] = Int16(src[p]) &- za }
            } else {
                let src = a.assumingMemoryBound(to: UInt8.self) + i * lda
                for p in 0..<b.k { row[p] = Int16(src[p]) &- za }
            }
            for p in b.k..<width { row[p] = 0 }
        }
        bytes = UnsafeRawPointer(buffer)
        stride = width
        owned = buffer
    }

    func release() { owned?.deallocate() }
}

/// The readable definition of `int8Gemm`: C[i, j] = Σ_k (A[i, k] - aZeroPoint) * (b(k, j) -
/// bZeroPoints[j]) (`bZeroPoints` has 1 or n entries), A uint8 or int8 [m, k] with stride `lda`.
/// With `saturatingPairs` it computes what the `.u8s8` kernel computes instead: raw products
/// A·B (int8 A shifted to uint8 by +128) summed in k pairs (2t, 2t+1) saturated to int16, then
/// zero points corrected as exact sums.
public func int8GemmReference(m: Int, n: Int, k: Int, a: UnsafeRawPointer, aSigned: Bool, lda: Int, aZeroPoint: Int32,
                              b: (_ k: Int, _ column: Int) -> Int32, bZeroPoints: [Int32],
                              c: UnsafeMutablePointer<Int32>, ldc: Int, saturatingPairs: Bool) {
    let shift: Int32 = saturatingPairs && aSigned ? 128 : 0
    let aZeroPoint = aZeroPoint + shift
    func av(_ i: Int, _ p: Int) -> Int32 {
        shift + (aSigned ? Int32(a.load(fromByteOffset: i * lda + p, as: Int8.self)) : Int32(a.load(fromByteOffset: i * lda + p, as: UInt8.self)))
    }
    for i in 0..<m {
        for j in 0..<n {
            let zb = bZeroPoints.count == 1 ? bZeroPoints[0] : bZeroPoints[j]
            var sum: Int32 = 0
            if saturatingPairs {
                var p = 0
                while p < k {
                    var pair = av(i, p) * b(p, j)
                    if p + 1 < k { pair += av(i, p + 1) * b(p + 1, j) }
                    sum &+= min(max(pair, Int32(Int16.min)), Int32(Int16.max))
                    p += 2
                }
                var rowSum: Int32 = 0, columnSum: Int32 = 0
                for p in 0..<k { rowSum &+= av(i, p); columnSum &+= b(p, j) }
                sum = sum &- aZeroPoint &* columnSum &- zb &* rowSum &+ Int32(k) &* aZeroPoint &* zb
            } else {
                for p in 0..<k { sum &+= (av(i, p) - aZeroPoint) &* (b(p, j) - zb) }
            }
            c[i * ldc + j] = sum
        }
    }
}
