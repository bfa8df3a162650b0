#if canImport(Glibc)
import Glibc
#endif

/// `PackedGemm` for several threads: a product split into tiles that the threads take one by
/// one (`parallelForClaimed`), each tile a single-threaded oneDNN product. On a machine whose
/// other cores are busy the calling thread takes every tile instead of waiting for a thread
/// that has no core (as oneDNN's own OpenMP split must).
/// Products of at least `wholeRowsPerThread` rows per thread on a W of at most `wholeLimit`
/// elements are split into row tiles of the whole W; others (too narrow for rows to share, or
/// W too large for every thread to stream all of it) into tiles of up to 128 rows by a column
/// block of W, computed into the thread's scratch and copied into C. Where W is held in the
/// AVX2 kernel's panels (no AVX-512) the tiles are the column blocks over all rows, written
/// into C where it lies. W is packed once: the
/// column blocks are views of the whole packed W where its layout allows (it does on AVX-512),
/// else the blocks are packed instead of the whole. One product at a time per instance.
public final class PackedGemmTiles: @unchecked Sendable {
    public let k: Int, n: Int
    public let threads: Int
    /// Rows per tile of a column block.
    static let tileRows = 128
    /// Products with this many rows per thread or more are split by rows of the whole W.
    static let wholeRowsPerThread = 32
    /// W larger than this (elements) is split only by column blocks on several threads.
    static let wholeLimit = 1 << 22
    private let blocks: [PackedGemm]
    /// W packed whole (nil when only the column blocks are packed).
    private let whole: PackedGemm?
    private let width: Int
    private var scratch: UnsafeMutablePointer<Float>?
    /// A small W (at most `smallLimit` elements) also as [K, N] row-major, subnormals read as
    /// zero, with its bias: products of at most `smallWork` multiply-adds run on it in a plain
    /// loop (`smallProduct`), which costs less than a oneDNN call.
    private let small: (w: [Float], bias: [Float]?)?
    static let smallLimit = 1 << 14
    static let smallWork = 1 << 17

    /// `PackedGemm.init`'s arguments, W split into about 2 * threads blocks of a multiple of 64
    /// columns (one block for one thread). nil when oneDNN has no optimized product.
    public init?(k: Int, n: Int, w: UnsafePointer<Float>, ldw: Int, transposed: Bool, bias: UnsafePointer<Float>?, threads: Int) {
        guard k > 0, n > 0 else { return nil }
        let threads = max(1, threads)
        let target = (n + 2 * threads - 1) / (2 * threads)
        let width = threads == 1 ? n : min(n, max(64, (target + 63) / 64 * 64))
        guard let packed = PackedGemm(k: k, n: n, w: w, ldw: ldw, transposed: transposed, bias: bias) else { return nil }
        var whole: PackedGemm? = packed
        var blocks: [PackedGemm] = []
        if threads > 1 {
            let starts = Array(stride(from: 0, to: n, by: width))
            blocks = starts.compactMap { packed.view(columns: $0, count: min(width, n - $0)) }
            if blocks.count < starts.count {
                // No views in this layout: the blocks replace the whole (one packed copy).
                blocks = []
                whole = nil
                for c0 in starts {
                    let columns = min(width, n - c0)
                    guard let block = PackedGemm(k: k, n: columns, w: transposed ? w + c0 * ldw : w + c0, ldw: ldw, transposed: transposed,
                                                 bias: bias.map { $0 + c0 }) else { return nil }
                    blocks.append(block)
                }
            }
        }
        self.k = k
        self.n = n
        self.threads = threads
        self.width = width
        self.blocks = blocks
        self.whole = whole
        small = k * n > Self.smallLimit ? nil : (
            (0..<(k * n)).map { i in
                let v = transposed ? w[(i % n) * ldw + i / n] : w[(i / n) * ldw + i % n]
                return v.isSubnormal ? 0 : v
            },
            bias.map { Array(UnsafeBufferPointer(start: $0, count: n)) })
    }

    deinit { scratch?.deallocate() }

    /// Writes W back as `init` read it (element (k, j) at w[k * ldw + j], or w[j * ldw + k] when
    /// `transposed`), except that subnormals read as zero. False when oneDNN failed.
    public func unpack(into w: UnsafeMutablePointer<Float>, ldw: Int, transposed: Bool) -> Bool {
        if let whole { return whole.unpack(into: w, ldw: ldw, transposed: transposed) }
        for (i, block) in blocks.enumerated() {
            let c0 = i * width
            if !block.unpack(into: transposed ? w + c0 * ldw : w + c0, ldw: ldw, transposed: transposed) { return false }
        }
        return true
    }

    /// C[i, j] = Σ_p A[i, p] · W[p, j] (+ bias[j]) for i < m, A dense [m, K], C dense [m, N].
    /// Returns false when oneDNN failed; C is undefined then.
    public func multiply(m: Int, a: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) -> Bool {
        if m <= 0 { return true }
        if let small, m * k * n <= Self.smallWork {
            small.w.withUnsafeBufferPointer { w in
                if let bias = small.bias {
                    bias.withUnsafeBufferPointer { smallProduct(m: m, k: k, n: n, a: a, w: w.baseAddress!, bias: $0.baseAddress!, c: c) }
                } else {
                    smallProduct(m: m, k: k, n: n, a: a, w: w.baseAddress!, bias: nil, c: c)
                }
            }
            return true
        }
        if threads == 1, let whole { return whole.multiply(m: m, a: a, c: c) }
        if blocks.count > 1, blocks[0].writesStrided {
            // AVX2 panels: each column block over all rows, written into C where it lies, so
            // that W is streamed once whatever the row count (the kernel blocks rows itself).
            var failed = false
            parallelForClaimed(blocks.count, threads: threads) { _, b in
                if !blocks[b].multiply(m: m, a: a, c: c + b * width, ldc: n) { failed = true }
            }
            return !failed
        }
        if let whole, m >= Self.wholeRowsPerThread * threads, k * n <= Self.wholeLimit {
            // Row tiles of the whole W: about two per thread, at most tileRows rows each.
            let rows = min(Self.tileRows, (m + 2 * threads - 1) / (2 * threads))
            var failed = false
            parallelForClaimed((m + rows - 1) / rows, threads: threads) { worker, tile in
                let r0 = tile * rows
                if !whole.multiply(m: min(rows, m - r0), a: a + r0 * k, c: c + r0 * n, worker: worker) { failed = true }
            }
            return !failed
        }
        if blocks.count == 1 && m <= Self.tileRows { return blocks[0].multiply(m: m, a: a, c: c) }
        let rowTiles = (m + Self.tileRows - 1) / Self.tileRows
        let tileSize = Self.tileRows * width
        if blocks.count > 1 && scratch == nil { scratch = .allocate(capacity: threads * tileSize) }
        var failed = false
        parallelForClaimed(rowTiles * blocks.count, threads: threads) { worker, tile in
            let r0 = (tile / blocks.count) * Self.tileRows, rows = min(Self.tileRows, m - r0)
            let block = blocks[tile % blocks.count], c0 = (tile % blocks.count) * width
            if blocks.count == 1 {
                if !block.multiply(m: rows, a: a + r0 * k, c: c + r0 * n, worker: worker) { failed = true }
                return
            }
            let out = scratch! + worker * tileSize
            if !block.multiply(m: rows, a: a + r0 * k, c: out, worker: worker) { failed = true; return }
            for i in 0..<rows {
                memcpy(c + (r0 + i) * n + c0, out + i * block.n, block.n * MemoryLayout<Float>.size)
            }
        }
        return !failed
    }
}
