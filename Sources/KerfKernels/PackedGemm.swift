import KerfCKernels

/// A constant right-hand matrix W [K, N] packed once into the layout oneDNN's matmul kernels
/// for the running CPU want, with an optional bias row, for products C = A · W (+ bias) on any
/// number of rows: the plain `sgemm` repacks W on every call, which costs as much as the
/// arithmetic when A has few rows.
///
/// The packed copy is independent of the array it was made from. Products run on the calling
/// thread with oneDNN's threads (`setGemmThreads`).
public final class PackedGemm: @unchecked Sendable {
    public let k: Int, n: Int
    public let hasBias: Bool
    private let handle: OpaquePointer
    /// The product whose packed buffer a view reads (kept alive with the view).
    private let parent: PackedGemm?

    /// Packs W, element (k, j) at w[k * ldw + j], or at w[j * ldw + k] when `transposed` (W stored
    /// as Wᵀ [N, K]). `bias` holds N floats or is nil. nil when oneDNN has no optimized product
    /// for this CPU (the caller keeps using `sgemm`).
    public init?(k: Int, n: Int, w: UnsafePointer<Float>, ldw: Int, transposed: Bool, bias: UnsafePointer<Float>?) {
        guard k > 0, n > 0,
              let h = kerf_packed_gemm_create(Int64(k), Int64(n), w, Int64(ldw), transposed ? 1 : 0, bias) else { return nil }
        handle = h
        self.k = k
        self.n = n
        hasBias = bias != nil
        parent = nil
    }

    /// The packed layout's column block: views start (and, unless they end at W's last column,
    /// end) on multiples of it. 64 on AVX-512, 1 where oneDNN keeps W row-major (AVX2); 0 when
    /// the layout cannot be split at all.
    public var columnBlock: Int { Int(kerf_packed_gemm_column_block(handle)) }

    /// The product over columns [c0, c0 + n) of W with no copy of its own: it reads this
    /// product's packed buffer (and keeps this product alive). nil when the packed layout does
    /// not split at those columns (they must start, and unless they end at W's last column,
    /// end on a block of the layout: multiples of 64 on AVX-512).
    public func view(columns c0: Int, count n: Int) -> PackedGemm? {
        guard let h = kerf_packed_gemm_view(handle, Int64(c0), Int64(n)) else { return nil }
        return PackedGemm(view: h, parent: self, k: k, n: n)
    }

    private init(view: OpaquePointer, parent: PackedGemm, k: Int, n: Int) {
        handle = view
        self.parent = parent
        self.k = k
        self.n = n
        hasBias = parent.hasBias
    }

    deinit { kerf_packed_gemm_destroy(handle) }

    /// True when `multiply(m:a:c:ldc:)` can write C with any row stride (W held in the AVX2
    /// kernel's panels: CPUs without AVX-512).
    public var writesStrided: Bool { kerf_packed_gemm_writes_strided(handle) != 0 }

    /// C[i, j] = Σ_p A[i, p] · W[p, j] (+ bias[j]) for i < m, A dense [m, K], C's rows `ldc` (≥ N)
    /// floats apart (the other columns untouched). Only where `writesStrided`: false elsewhere,
    /// C untouched. Runs on the calling thread only.
    public func multiply(m: Int, a: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int) -> Bool {
        kerf_packed_gemm_run_strided(handle, Int64(m), a, c, Int64(ldc)) == 0
    }

    /// Writes W back as `init` read it (element (k, j) at w[k * ldw + j], or w[j * ldw + k] when
    /// `transposed`), except that subnormals read as zero. False when oneDNN failed.
    public func unpack(into w: UnsafeMutablePointer<Float>, ldw: Int, transposed: Bool) -> Bool {
        kerf_packed_gemm_unpack(handle, w, Int64(ldw), transposed ? 1 : 0) == 0
    }

    /// C[i, j] = Σ_p A[i, p] · W[p, j] (+ bias[j]) for i < m, A dense [m, K], C dense [m, N].
    /// Concurrent calls must pass different `worker`s (in 0..<64). Returns false when oneDNN
    /// failed; C is undefined then.
    public func multiply(m: Int, a: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, worker: Int = 0) -> Bool {
        kerf_packed_gemm_run(handle, Int64(m), a, c, Int32(worker)) == 0
    }
}
