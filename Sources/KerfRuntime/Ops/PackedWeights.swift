import KerfCore
import KerfKernels

/// The constant float weight B (logical [K, N]) of a MatMul or Gemm, with its constant bias
/// row if the product adds one, packed for oneDNN (`PackedGemmTiles`): `sgemm` packs B again
/// on every call, which costs as much as the arithmetic on few rows.
///
/// B is either
/// - owned: a constant no feed can replace, taken from the session (`takeConstant`). It is
///   packed at the first product and then let go, so that the packed copy is the only one
///   once the model is freed (packing at session creation would need both at once while the
///   model is alive). `weights()` rebuilds B from the packed copy for a product oneDNN cannot
///   run; or
/// - shared: an initializer a feed may replace, packed at once, used only while the run's B is
///   that same storage.
/// One product at a time (each operator serves one run at a time: its plan step's lock).
final class PackedWeights {
    let k: Int, n: Int
    private let transposed: Bool, threads: Int
    /// B's shape as stored: [K, N], or [N, K] when transposed.
    private let storedShape: [Int]
    /// The bias row (scaled), when the product adds one.
    private let row: [Float]?
    /// The constant bias the row was made from: a feed that overrides it is another storage.
    private let biasSource: TensorStorage?
    /// Shared B: the storage the packed copy was made from.
    private let source: TensorStorage?
    /// Owned B until it is packed (kept for good when oneDNN cannot pack it).
    private var pending: Tensor?
    private var gemm: PackedGemmTiles?
    /// Packing an owned B failed: it is not tried again.
    private var unpackable = false

    /// Packed weights for input `index` of the node (B, Bᵀ [N, K] when `transposed`), nil unless
    /// it is a constant 2-D float tensor and `bias`, if any, a float tensor of N elements
    /// broadcast over rows (scaled by `biasScale`); nil also when the CPU has no packed product.
    /// B is taken from the session when it can be (then the operator must not read input
    /// `index`: use `weights()` instead), else packed at once.
    init?(_ c: OperatorContext, input index: Int, transposed: Bool, bias: Tensor?, biasScale: Float = 1, threads: Int) {
        guard let b = c.constant(index), b.dtype == .float, b.rank == 2, b.count > 0 else { return nil }
        let (k, n) = transposed ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        if let bias, bias.dtype != .float || bias.count != n || bias.shape.last != n { return nil }
        self.k = k
        self.n = n
        self.transposed = transposed
        self.threads = threads
        storedShape = b.shape
        row = bias.map { t in t.array(of: Float.self).map { $0 * biasScale } }
        biasSource = bias?.storage
        if let owned = c.takeConstant(index) {
            source = nil
            pending = owned
        } else {
            source = b.storage
            guard let made = Self.pack(b, k: k, n: n, transposed: transposed, row: row, threads: threads) else { return nil }
            gemm = made
        }
    }

    private static func pack(_ b: Tensor, k: Int, n: Int, transposed: Bool, row: [Float]?, threads: Int) -> PackedGemmTiles? {
        b.withElements(as: Float.self) { w in
            guard let row else {
                return PackedGemmTiles(k: k, n: n, w: w.baseAddress!, ldw: b.shape[1], transposed: transposed, bias: nil, threads: threads)
            }
            return row.withUnsafeBufferPointer {
                PackedGemmTiles(k: k, n: n, w: w.baseAddress!, ldw: b.shape[1], transposed: transposed, bias: $0.baseAddress!, threads: threads)
            }
        }
    }

    /// A · B (+ bias) with A float [..., K] (or [K]), the result shaped [..., N] (or [N]); nil when
    /// the packed product does not apply: a shared B replaced by a feed (`b` is the run's input
    /// 1, ignored for an owned B), another bias than the constant, or oneDNN failing.
    func product(_ a: Tensor, _ b: Tensor?, bias: Tensor?) throws -> Tensor? {
        if let source {
            guard let b, b.storage === source, b.shape == storedShape else { return nil }
        }
        guard bias?.storage === biasSource, a.dtype == .float, a.rank >= 1, a.shape.last == k else { return nil }
        let rows = a.count / k
        guard rows >= 1 else { return nil }
        if gemm == nil, !unpackable, let b = pending {
            gemm = Self.pack(b, k: k, n: n, transposed: transposed, row: row, threads: threads)
            if gemm == nil { unpackable = true } else { pending = nil }
        }
        guard let gemm else { return nil }
        var out = try Tensor(uninitialized: .float, shape: Array(a.shape.dropLast()) + [n])
        let ok = a.withElements(as: Float.self) { x in
            out.withMutableElements(as: Float.self) { y in
                gemm.multiply(m: rows, a: x.baseAddress!, c: y.baseAddress!)
            }
        }
        return ok ? out : nil
    }

    /// An owned B as it was given (rebuilt from the packed copy once packed, subnormals read as
    /// zero); nil for a shared B (read it from the inputs) or when oneDNN fails to unpack.
    func weights() throws -> Tensor? {
        guard source == nil else { return nil }
        if let pending { return pending }
        guard let gemm else { return nil }
        var b = try Tensor(uninitialized: .float, shape: storedShape)
        let ok = b.withMutableElements(as: Float.self) { gemm.unpack(into: $0.baseAddress!, ldw: storedShape[1], transposed: transposed) }
        return ok ? b : nil
    }
}
