import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

/// The constant float weight B (logical [K, N]) of a MatMul or Gemm, kept also in sparse form
/// because enough of it is zero, with the choice between the sparse kernel and dense `sgemm`
/// made by timing both on the real input the first time each row count M is seen.
///
/// Built at session creation; each operator serves one run at a time (its plan step's lock),
/// so the per-M choices need no lock of their own.
final class SparseWeights {
    /// Below this zero fraction the sparse form reads about as many bytes as the dense one and
    /// cannot pay, so it is not even built.
    static let minimumZeroFraction = 0.4

    /// The constant B was built from: a feed that overrides the initializer is another storage.
    private let source: TensorStorage
    private let storedShape: [Int]
    /// Whether B is stored as Bᵀ [N, K] (Gemm transB = 1).
    private let transposed: Bool
    private let matrix: SparseMatrix
    private let threads: Int
    /// Row count M -> whether the sparse kernel measured faster than dense.
    private var sparseWins: [Int: Bool] = [:]
    /// Tests' switch and counter (nil otherwise): a forced choice replaces the timing.
    private let probe: RuntimeProbe?

    /// nil unless `b` is a 2-D float tensor with at least `minimumZeroFraction` zeros.
    /// `transposed` says that `b` stores Bᵀ [N, K]; `threads` is the session's thread count;
    /// `probe` the session's (`SessionOptions.probe`).
    init?(_ b: Tensor, transposed: Bool, threads: Int, probe: RuntimeProbe?) {
        guard b.dtype == .float, b.rank == 2, b.count > 0 else { return nil }
        let fraction = b.withElements(as: Float.self) { zeroFraction($0.baseAddress!, count: $0.count) }
        guard fraction >= Self.minimumZeroFraction else { return nil }
        let (k, n) = transposed ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        source = b.storage
        storedShape = b.shape
        self.transposed = transposed
        self.threads = max(1, threads)
        self.probe = probe
        matrix = b.withElements(as: Float.self) {
            SparseMatrix($0.baseAddress!, rows: k, columns: n, transposed: transposed, ld: b.shape[1])
        }
    }

    /// K and N of the logical B.
    var k: Int { matrix.rows }
    var n: Int { matrix.columns }

    /// Whether `b` is the tensor these weights were built from.
    func matches(_ b: Tensor) -> Bool { b.storage === source && b.shape == storedShape }

    /// C[M,N] = alpha * A[M,K] * B + beta * C through the faster path for this M. `a` is
    /// row-major with stride `lda`, `c` with stride `ldc`; `dense` is B as stored (the tensor
    /// `matches` accepted), for the dense path. When beta == 0, C is not read.
    func multiply(m: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, dense: UnsafePointer<Float>,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let useSparse = probe?.forcedSparseChoice ?? sparseWins[m] ?? measure(m: m, a: a, lda: lda, dense: dense)
        if useSparse {
            probe?.countSparseProduct()
            sparseGemm(m: m, alpha: alpha, a: a, lda: lda, b: matrix, beta: beta, c: c, ldc: ldc, threads: threads)
        } else {
            denseGemm(m: m, alpha: alpha, a: a, lda: lda, dense: dense, beta: beta, c: c, ldc: ldc)
        }
    }

    private func denseGemm(m: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, dense: UnsafePointer<Float>,
                           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        sgemm(transA: false, transB: transposed, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              b: dense, ldb: storedShape[1], beta: beta, c: c, ldc: ldc)
    }

    /// Times both paths on this input into a scratch output and records the winner for `m`.
    /// Each path runs in blocks of a warm-up and three timed runs, as in a session that settled
    /// on it (a sparse run right after a dense one would share the cores with oneDNN's spinning
    /// OpenMP workers); two rounds of blocks, the best run of each path counting, so that a
    /// burst of other load on the machine during one block does not decide.
    private func measure(m: Int, a: UnsafePointer<Float>, lda: Int, dense: UnsafePointer<Float>) -> Bool {
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, m * n))
        defer { scratch.deallocate() }
        let runSparse = { sparseGemm(m: m, alpha: 1, a: a, lda: lda, b: self.matrix, beta: 0, c: scratch, ldc: self.n, threads: self.threads) }
        let runDense = { self.denseGemm(m: m, alpha: 1, a: a, lda: lda, dense: dense, beta: 0, c: scratch, ldc: self.n) }
        func best(_ body: () -> Void) -> Double {
            body()
            return (0..<3).map { _ in secondsTaken(body) }.min()!
        }
        var bestSparse = Double.infinity, bestDense = Double.infinity
        for _ in 0..<2 {
            bestSparse = min(bestSparse, best(runSparse))
            bestDense = min(bestDense, best(runDense))
        }
        let wins = bestSparse < bestDense
        sparseWins[m] = wins
        return wins
    }

    // MARK: Operator-level products

    /// MatMul(A, B) with A float of rank >= 1 ([..., K], its leading dims taken as rows), when
    /// `b` is these weights; nil when the product is not one this form computes, so the caller
    /// falls back to the general MatMul (which also reports shape errors).
    func matmul(_ a: Tensor, _ b: Tensor) throws -> Tensor? {
        guard !transposed, matches(b), a.dtype == .float, a.rank >= 1, a.shape[a.rank - 1] == k else { return nil }
        let m = a.count / max(1, k)
        var out = try Tensor(uninitialized: .float, shape: Array(a.shape.dropLast()) + [n])
        if m == 0 { return out }
        a.withElements(as: Float.self) { av in
            b.withElements(as: Float.self) { bv in
                out.withMutableElements(as: Float.self) { y in
                    multiply(m: m, alpha: 1, a: av.baseAddress!, lda: k, dense: bv.baseAddress!, beta: 0, c: y.baseAddress!, ldc: n)
                }
            }
        }
        return out
    }
}

/// Wall-clock seconds `body` takes (monotonic clock).
private func secondsTaken(_ body: () -> Void) -> Double {
    let start = monotonicSeconds()
    body()
    return monotonicSeconds() - start
}
