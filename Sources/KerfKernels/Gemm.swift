import CDNNL
import KerfCKernels

/// Row-major single-precision GEMM: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
/// op(X) is X or its transpose; `lda`, `ldb`, `ldc` are row strides of the stored matrices
/// (A is stored [M,K] when !transA, [K,M] when transA; likewise B). When beta == 0, C is not read.
/// Large products go through oneDNN; the result matches `sgemmReference` to float rounding.
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    let status = dnnl_sgemm(transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha,
                            a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
    if status != dnnl_success {
        sgemmReference(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

/// The readable definition of `sgemm` (same contract), accumulating in Float.
public func sgemmReference(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var sum: Float = 0
            for p in 0..<k {
                let x = transA ? a[p * lda + i] : a[i * lda + p]
                let y = transB ? b[j * ldb + p] : b[p * ldb + j]
                sum += x * y
            }
            c[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j])
        }
    }
}

/// Sets the number of threads oneDNN's GEMM may use (process-wide OpenMP setting).
public func setGemmThreads(_ n: Int) {
    omp_set_num_threads(Int32(max(1, n)))
}

/// c[m, n] = a[m, k] · w[k, n] (+ bias[n]), all dense row-major, c apart from the inputs: for
/// products too small to pay for a oneDNN call (about a microsecond). Each row sums the products
/// of k in order from zero, vectorized over n (AVX2 FMA when the CPU has it), then adds the bias.
/// The AVX2 kernel reads subnormal inputs as zero and flushes subnormal results (a subnormal
/// costs a microcode assist per multiply-add), restoring the caller's floating-point state.
public func smallProduct(m: Int, k: Int, n: Int, a: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                         c: UnsafeMutablePointer<Float>) {
    if int8GemmAccelerated {
        kerf_small_product_f32_avx2(m, k, n, a, w, bias, c)
        return
    }
    for r in 0..<m {
        let row = c + r * n, x = a + r * k
        row.update(repeating: 0, count: n)
        for i in 0..<k {
            let v = x[i], wi = w + i * n
            for j in 0..<n { row[j] += v * wi[j] }
        }
        if let bias { for j in 0..<n { row[j] += bias[j] } }
    }
}
