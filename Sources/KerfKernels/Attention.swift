#if canImport(Glibc)
import Glibc
#endif

/// What an attention head writes beside its output: its scores at one stage of the computation,
/// [s, t] row-major (ONNX Attention's `qk_matmul_output_mode`).
public enum AttentionScoreStage: Sendable {
    /// scale · q·kᵀ, soft-capped when a cap is set (modes 0 and 1).
    case product
    /// The product plus the bias (mode 2).
    case biased
    /// The softmax probabilities (mode 3).
    case probabilities
}

/// Scaled dot-product attention of one head.
///
/// q is [s, dk] (row stride `ldq`), k is [t, dk] (stride `ldk`), v is [t, dv] (stride `ldv`),
/// bias is [s, t] dense (nil: zero), y is [s, dv] (stride `ldy`). For each query row i:
///
///     a[i, j] = softcap(scale · q[i]·k[j]) + bias[i, j]      softcap(x) = c·tanh(x / c) when c > 0
///     p[i]    = softmax(a[i])                                 (all zeros when bias[i] is −∞ everywhere)
///     y[i]    = Σ_j p[i, j] · v[j]
///
/// A row the bias masks completely yields zeros, not NaN. `scores` is [s, t] scratch that
/// holds p on return; `stageOut` ([s, t], may be nil) receives the scores at `stage`.
/// Products run through `sgemm`.
public func attentionHead(q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
                          v: UnsafePointer<Float>, ldv: Int, s: Int, t: Int, dk: Int, dv: Int,
                          scale: Float, softcap: Float, bias: UnsafePointer<Float>?,
                          scores: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, ldy: Int,
                          stage: AttentionScoreStage = .product, stageOut: UnsafeMutablePointer<Float>? = nil) {
    guard s > 0 else { return }
    guard t > 0 else {
        for i in 0..<s { (y + i * ldy).update(repeating: 0, count: dv) }
        return
    }
    sgemm(transA: false, transB: true, m: s, n: t, k: dk, alpha: scale, a: q, lda: ldq, b: k, ldb: ldk,
          beta: 0, c: scores, ldc: t)
    let count = s * t
    if softcap > 0 {
        for j in 0..<count { scores[j] = softcap * tanhf(scores[j] / softcap) }
    }
    if let stageOut, stage == .product { stageOut.update(from: scores, count: count) }
    var masked = [Bool](repeating: false, count: s)
    if let bias {
        for i in 0..<s {
            let row = scores + i * t, b = bias + i * t
            var open = false
            for j in 0..<t {
                row[j] += b[j]
                open = open || b[j] != -.infinity
            }
            masked[i] = !open
        }
    }
    if let stageOut, stage == .biased { stageOut.update(from: scores, count: count) }
    softmax(scores, scores, outer: s, n: t, inner: 1, log: false)
    for i in 0..<s where masked[i] { (scores + i * t).update(repeating: 0, count: t) }
    if let stageOut, stage == .probabilities { stageOut.update(from: scores, count: count) }
    sgemm(transA: false, transB: false, m: s, n: dv, k: t, alpha: 1, a: scores, lda: t, b: v, ldb: ldv,
          beta: 0, c: y, ldc: ldy)
}

/// The part of an attention bias that follows from positions: for query i of a block whose first
/// query sits at absolute position `offset` (so query i is at p = offset + i) and key j,
/// row[j] += −∞ unless
///
///     (not causal or j ≤ p) and (left < 0 or p − j ≤ left) and (right < 0 or j − p ≤ right)
///     and j < validKeys
///
/// `row` holds t elements; ∞ − ∞ is never formed (−∞ plus −∞ stays −∞).
public func maskKeyPositions(_ row: UnsafeMutablePointer<Float>, t: Int, position p: Int, causal: Bool,
                             leftWindow left: Int, rightWindow right: Int, validKeys: Int) {
    for j in 0..<t {
        var open = j < validKeys
        if causal && j > p { open = false }
        if left >= 0 && p - j > left { open = false }
        if right >= 0 && j - p > right { open = false }
        if !open { row[j] = -.infinity }
    }
}
