// `int8Gemm` for a whole [m, K] activation in blocks of rows, each block's int32 sums handed to
// an epilogue while they are still in cache. A product of 1024 rows by 1024 columns has 4 MB of
// sums: written whole, then corrected, then scaled (and maybe activated and requantized), it
// goes to memory and back at every step; by blocks of 32 rows it stays in L2.

/// Rows per block: about 128 KB of int32 sums, at least 8 rows, at most `m` — or up to 4 MB of
/// sums when the packed weight (`k` x `n` bytes) is too large to stay in cache from one block to
/// the next (each block reads all of it: an MLP's 1024 x 4096 layer at batch 32 would read its
/// 4 MB four times from memory).
public func int8GemmBlockRows(m: Int, n: Int, k: Int) -> Int {
    let sums = k * n > 1 << 20 ? 1 << 20 : 32 * 1024
    return max(1, min(m, max(8, sums / max(n, 1))))
}

/// C = int8Gemm(A, b) (see Int8Gemm.swift for A's contract), delivered block by block:
/// `epilogue(acc, offsets, firstRow, rows, scratch)` gets A's rows firstRow ..< firstRow + rows
/// as acc [rows, b.n] (row stride b.n) &+ offsets[j] (b.n int32, or nil: none), plus
/// `int8GemmBlockRows(m:n:k:) * b.n` floats of scratch; acc and scratch belong to the calling
/// thread and are valid only during the call. With enough blocks, blocks
/// run on up to `threads` threads (so do their epilogues, concurrently: `epilogue` must be safe
/// for disjoint rows); otherwise each block's column panels are split over the threads.
/// `known`: b.columnOffsets for aZeroPoint, computed once by a caller whose zero point is a
/// constant (else they are computed per call, into scratch).
public func int8GemmByRowBlocks(m: Int, a: UnsafeRawPointer, aSigned: Bool, lda: Int, aZeroPoint: Int32, b: PackedInt8Weights,
                                threads: Int, columnOffsets known: UnsafePointer<Int32>? = nil,
                                epilogue: (_ acc: UnsafeMutablePointer<Int32>, _ offsets: UnsafePointer<Int32>?, _ firstRow: Int,
                                           _ rows: Int, _ scratch: UnsafeMutablePointer<Float>) -> Void) {
    let n = b.n
    if m == 0 || n == 0 { return }
    let blockRows = int8GemmBlockRows(m: m, n: n, k: b.k)
    let blocks = (m + blockRows - 1) / blockRows
    // Blocks per thread only when there are at least two per thread to balance a slow thread.
    let workers = threads > 1 && blocks >= 2 * threads ? threads : 1
    let perWorker = blockRows * n
    let scratch = ScratchPool.shared.take()
    defer { ScratchPool.shared.give(scratch) }
    // Per worker: int32 sums, then float scratch; after the workers, the column offsets.
    scratch.reserve(workers * perWorker * 8 + n * 4)
    let buffer = scratch.pointer!
    // The zero-point correction goes into the epilogue's pass over the sums when it can.
    let offsetsAt = (buffer + workers * perWorker * 8).bindMemory(to: Int32.self, capacity: n)
    let offsets = known ?? (b.writeColumnOffsets(aZeroPoint: aZeroPoint, aSigned: aSigned, into: offsetsAt) ? UnsafePointer(offsetsAt) : nil)
    func runBlock(_ worker: Int, _ block: Int, _ gemmThreads: Int) {
        let first = block * blockRows, rows = min(blockRows, m - first)
        let acc = (buffer + worker * perWorker * 8).bindMemory(to: Int32.self, capacity: perWorker)
        let scratch = (buffer + worker * perWorker * 8 + perWorker * 4).bindMemory(to: Float.self, capacity: perWorker)
        int8Gemm(m: rows, a: a + first * lda, aSigned: aSigned, lda: lda, aZeroPoint: aZeroPoint, b: b, c: acc, ldc: n,
                 threads: gemmThreads, correctingZeroPoints: offsets == nil)
        epilogue(acc, offsets, first, rows, scratch)
    }
    if workers > 1 {
        parallelForClaimed(blocks, threads: workers) { worker, block in runBlock(worker, block, 1) }
    } else {
        for block in 0..<blocks { runBlock(0, block, threads) }
    }
}

/// `body` with the array's elements, or with nil.
public func withOptionalBuffer<T, R>(_ array: [T]?, _ body: (UnsafeBufferPointer<T>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0) }
}
