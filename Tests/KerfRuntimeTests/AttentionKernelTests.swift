import XCTest
@testable import KerfKernels
import KerfTestSupport

/// The kernels of ONNX Attention, RotaryEmbedding and RMSNormalization against their
/// definitions computed in Double.
final class AttentionKernelTests: XCTestCase {
    /// One head with strided q (as a 3-D input reads it), a soft cap and a bias that masks one
    /// row completely: y and the probabilities match the definition; the masked row is zeros.
    func testAttentionHeadMatchesTheDefinition() {
        let random = SeededGenerator(seed: 7)
        let (s, t, dk, dv, ldq) = (3, 5, 4, 6, 9)
        let q = random.floats(s * ldq, in: -2...2), k = random.floats(t * dk, in: -2...2), v = random.floats(t * dv, in: -2...2)
        var bias = random.floats(s * t, in: -1...1)
        for j in 0..<t { bias[t + j] = -.infinity }  // row 1: every key masked
        bias[2 * t + 3] = -.infinity
        let (scale, cap): (Float, Float) = (0.7, 1.5)
        var scores = [Float](repeating: .nan, count: s * t), probabilities = scores
        var y = [Float](repeating: .nan, count: s * dv)
        attentionHead(q: q, ldq: ldq, k: k, ldk: dk, v: v, ldv: dv, s: s, t: t, dk: dk, dv: dv, scale: scale, softcap: cap,
                      bias: bias, scores: &scores, y: &y, ldy: dv, stage: .probabilities, stageOut: &probabilities)
        for i in 0..<s {
            let a = (0..<t).map { j -> Double in
                let dot = (0..<dk).map { Double(q[i * ldq + $0]) * Double(k[j * dk + $0]) }.reduce(0, +)
                return Double(cap) * tanh(Double(scale) * dot / Double(cap)) + Double(bias[i * t + j])
            }
            let m = a.max()!
            let e = a.map { m == -.infinity ? 0 : exp($0 - m) }, sum = e.reduce(0, +)
            let p = e.map { sum == 0 ? 0 : $0 / sum }
            for j in 0..<t { XCTAssertEqual(Double(probabilities[i * t + j]), p[j], accuracy: 1e-5, "p[\(i), \(j)]") }
            for c in 0..<dv {
                let want = (0..<t).map { p[$0] * Double(v[$0 * dv + c]) }.reduce(0, +)
                XCTAssertEqual(Double(y[i * dv + c]), want, accuracy: 1e-5, "y[\(i), \(c)]")
            }
        }
        XCTAssertEqual(Array(y[dv..<2 * dv]), [Float](repeating: 0, count: dv))
    }

    /// Causal, windowed and padded keys: −∞ exactly where the rule closes a key.
    func testMaskKeyPositions() {
        let t = 8
        for (p, causal, left, right, valid) in [(3, true, -1, -1, 8), (3, false, 1, 2, 8), (5, true, 2, -1, 4), (-2, true, -1, -1, 8)] {
            var row = [Float](repeating: 0.5, count: t)
            maskKeyPositions(&row, t: t, position: p, causal: causal, leftWindow: left, rightWindow: right, validKeys: valid)
            for j in 0..<t {
                let open = j < valid && (!causal || j <= p) && (left < 0 || p - j <= left) && (right < 0 || j - p <= right)
                XCTAssertEqual(row[j], open ? 0.5 : -.infinity, "p \(p) j \(j)")
            }
        }
    }

    /// Half-split and interleaved pairs rotate; elements past the rotary dims are copied.
    func testRotaryEmbeddingRow() {
        let random = SeededGenerator(seed: 3)
        let (d, half) = (10, 3)
        let x = random.floats(d, in: -2...2), angles = random.floats(half, in: -3...3)
        let cosines = angles.map { cos($0) }, sines = angles.map { sin($0) }
        for interleaved in [false, true] {
            var y = [Float](repeating: .nan, count: d)
            rotaryEmbeddingRow(x, &y, d: d, half: half, cos: cosines, sin: sines, interleaved: interleaved)
            for m in 0..<half {
                let (i, j) = interleaved ? (2 * m, 2 * m + 1) : (m, m + half)
                XCTAssertEqual(y[i], x[i] * cosines[m] - x[j] * sines[m], accuracy: 1e-6)
                XCTAssertEqual(y[j], x[i] * sines[m] + x[j] * cosines[m], accuracy: 1e-6)
            }
            XCTAssertEqual(Array(y[(2 * half)...]), Array(x[(2 * half)...]))
        }
    }

    func testRMSNormMatchesTheDefinition() {
        let random = SeededGenerator(seed: 9)
        for n in [1, 7, 8, 19] {
            let x = random.floats(2 * n, in: -3...3), scale = random.floats(n, in: -2...2)
            var y = [Float](repeating: .nan, count: x.count)
            rmsNorm(x, &y, rows: 2, n: n, scale: scale, epsilon: 0.1)
            for r in 0..<2 {
                let meanSquare = (0..<n).map { Double(x[r * n + $0]) * Double(x[r * n + $0]) }.reduce(0, +) / Double(n)
                for j in 0..<n {
                    let want = Double(x[r * n + j]) / (meanSquare + 0.1).squareRoot() * Double(scale[j])
                    XCTAssertEqual(Double(y[r * n + j]), want, accuracy: 1e-5, "n \(n) row \(r) j \(j)")
                }
            }
        }
    }

    func testDoubleSoftmaxRows() {
        let x: [Double] = [1, 2, 3, -.infinity, 0, 0]
        var y = [Double](repeating: .nan, count: 6)
        softmax(x, &y, outer: 2, n: 3, inner: 1, log: false)
        let e = [exp(-2.0), exp(-1.0), 1.0], sum = e.reduce(0, +)
        for j in 0..<3 { XCTAssertEqual(y[j], e[j] / sum, accuracy: 1e-15) }
        XCTAssertEqual(Array(y[3...]), [0, 0.5, 0.5])
    }
}
