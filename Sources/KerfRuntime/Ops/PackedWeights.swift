import KerfCore
import KerfKernels

/// The constant float weight B (logical [K, N]) of a MatMul or Gemm, with its constant bias
/// row if the product adds one, packed once at session creation (`PackedGemmTiles`): `sgemm`
/// packs B again on every call, which costs as much as the arithmetic on few rows.
final class PackedWeights {
    /// The constants the packed copy was made from: a feed that overrides an initializer is
    /// another storage, and the product then falls back to the general path.
    private let source: TensorStorage, storedShape: [Int]
    private let biasSource: TensorStorage?
    private let gemm: PackedGemmTiles

    /// nil unless `b` is a 2-D float tensor (Bᵀ [N, K] when `transposed`) and `bias`, if any, a
    /// float tensor of N elements broadcast over rows, scaled by `biasScale`; nil also when the
    /// CPU has no packed product. Products run on up to `threads` threads.
    init?(_ b: Tensor, transposed: Bool, bias: Tensor?, biasScale: Float = 1, threads: Int) {
        guard b.dtype == .float, b.rank == 2, b.count > 0 else { return nil }
        let (k, n) = transposed ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        if let bias, bias.dtype != .float || bias.count != n || bias.shape.last != n { return nil }
        let row: [Float]? = bias.map { t in t.array(of: Float.self).map { $0 * biasScale } }
        let made: PackedGemmTiles? = b.withElements(as: Float.self) { w in
            if let row {
                return row.withUnsafeBufferPointer {
                    PackedGemmTiles(k: k, n: n, w: w.baseAddress!, ldw: b.shape[1], transposed: transposed, bias: $0.baseAddress!,
                                    threads: threads)
                }
            }
            return PackedGemmTiles(k: k, n: n, w: w.baseAddress!, ldw: b.shape[1], transposed: transposed, bias: nil, threads: threads)
        }
        guard let made else { return nil }
        gemm = made
        source = b.storage
        storedShape = b.shape
        biasSource = bias?.storage
    }

    /// A · B (+ bias) with A float [..., K] (or [K]), the result shaped [..., N] (or [N]); nil when
    /// the packed product does not apply: another B or bias than the constants, or oneDNN
    /// failing.
    func product(_ a: Tensor, _ b: Tensor, bias: Tensor?) -> Tensor? {
        guard b.storage === source, b.shape == storedShape, bias?.storage === biasSource,
              a.dtype == .float, a.rank >= 1, a.shape.last == gemm.k else { return nil }
        let rows = a.count / gemm.k
        guard rows >= 1 else { return nil }
        var out = Tensor(uninitialized: .float, shape: Array(a.shape.dropLast()) + [gemm.n])
        let ok = a.withElements(as: Float.self) { x in
            out.withMutableElements(as: Float.self) { y in
                gemm.multiply(m: rows, a: x.baseAddress!, c: y.baseAddress!)
            }
        }
        return ok ? out : nil
    }
}
