// One direction of ONNX's recurrent ops (RNN, GRU, LSTM) over a batch of sequences, as plain
// functions over float buffers. The caller projects the inputs first: gates[t, b, :] =
// X[t, b, :]·Wᵀ + biases for every step at once (`recurrentInputProjection`, one GEMM); each
// step then adds H·Rᵀ (a GEMM of [batch, hidden] by [hidden, G·hidden] on R packed once,
// `RecurrentProduct`) and applies the gate math row by row. Gate orders are ONNX's: RNN [i],
// GRU [z, r, h], LSTM [i, o, f, c].

/// The sizes and step order of one direction.
public struct RecurrenceShape {
    public var steps: Int
    public var batch: Int
    public var hidden: Int
    /// Steps run from the last to the first (the reverse direction).
    public var reverse: Bool
    /// Per batch row, how many steps its sequence has (0...steps); nil: all `steps`. A row
    /// stops at its length: Y is zero past it and the last state is the one at its length
    /// (zero for length 0).
    public var lengths: [Int]?
    /// Gate pre-activations are clipped to [-clip, clip] before their activation (nil: none).
    public var clip: Float?

    public init(steps: Int, batch: Int, hidden: Int, reverse: Bool, lengths: [Int]?, clip: Float?) {
        self.steps = steps
        self.batch = batch
        self.hidden = hidden
        self.reverse = reverse
        self.lengths = lengths
        self.clip = clip
    }

    /// Calls body(t) for each step in the direction's order.
    func forEachStep(_ body: (Int) -> Void) {
        for i in 0..<steps { body(reverse ? steps - 1 - i : i) }
    }

    func isActive(row b: Int, step t: Int) -> Bool { lengths.map { t < $0[b] } ?? true }

    func clipped(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard let clip else { return }
        for i in 0..<count { x[i] = Swift.max(-clip, Swift.min(clip, x[i])) }
    }
}

/// Where one direction writes Y: step t's [batch, hidden] rows start at
/// `base + t · stepStride` (Y [steps, directions, batch, hidden]: base at this direction's
/// block, stride directions · batch · hidden).
public struct RecurrentOutput {
    public var base: UnsafeMutablePointer<Float>
    public var stepStride: Int

    public init(base: UnsafeMutablePointer<Float>, stepStride: Int) {
        self.base = base
        self.stepStride = stepStride
    }
}

/// The per-step product H·Rᵀ for a block of R's rows (R row-major [rows, hidden], not copied:
/// it must outlive the product), on R packed once for oneDNN's matmul kernels (`PackedGemm`:
/// the plain `sgemm` would repack R at every step) where oneDNN has them, else by `sgemm`.
public final class RecurrentProduct {
    public let rows: Int
    public let hidden: Int
    private let r: UnsafePointer<Float>
    private let packed: PackedGemm?

    public init(r: UnsafePointer<Float>, rows: Int, hidden: Int) {
        self.r = r
        self.rows = rows
        self.hidden = hidden
        packed = PackedGemm(k: hidden, n: rows, w: r, ldw: hidden, transposed: true, bias: nil)
    }

    /// out[m, rows] = h[m, hidden] · Rᵀ, out dense and overwritten. Concurrent calls pass
    /// different `worker`s (0..<64).
    public func multiply(m: Int, h: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, worker: Int) {
        if let packed, packed.multiply(m: m, a: h, c: out, worker: worker) { return }
        sgemm(transA: false, transB: true, m: m, n: rows, k: hidden, alpha: 1, a: h, lda: hidden, b: r, ldb: hidden, beta: 0, c: out,
              ldc: rows)
    }
}

/// gates[rows, width] = x[rows, inputSize] · w[width, inputSize]ᵀ + bias[width] (bias optional).
public func recurrentInputProjection(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     gates: UnsafeMutablePointer<Float>, rows: Int, inputSize: Int, width: Int) {
    sgemm(transA: false, transB: true, m: rows, n: width, k: inputSize, alpha: 1, a: x, lda: inputSize, b: w, ldb: inputSize,
          beta: 0, c: gates, ldc: width)
    guard let bias else { return }
    for r in 0..<rows {
        let row = gates + r * width
        for j in 0..<width { row[j] += bias[j] }
    }
}

/// RNN: H = f(gates + H·Rᵀ) per step. gates [steps, batch, hidden] (overwritten), r: R
/// [hidden, hidden], h [batch, hidden]: the initial state in, the last state out. `worker` as
/// `RecurrentProduct.multiply` takes it.
public func rnnSequence(_ s: RecurrenceShape, gates: UnsafeMutablePointer<Float>, r: RecurrentProduct,
                        h: UnsafeMutablePointer<Float>, f: RecurrentActivation, y: RecurrentOutput?, worker: Int) {
    let n = s.hidden
    withStepScratch(s.batch * n) { product in
        s.forEachStep { t in
            let g = gates + t * s.batch * n
            r.multiply(m: s.batch, h: h, into: product, worker: worker)
            for b in 0..<s.batch where s.isActive(row: b, step: t) {
                let gb = g + b * n, pb = product + b * n
                for j in 0..<n { gb[j] += pb[j] }
                s.clipped(gb, count: n)
                f.apply(gb, count: n)
                (h + b * n).update(from: gb, count: n)
            }
            write(y, step: t, state: h, s)
        }
    }
    zeroEmptyRows([h], s)
}

/// GRU: z = f(Xz + H·Rzᵀ), r = f(Xr + H·Rrᵀ), then
/// ĥ = g(Xh + (r ⊙ H)·Rhᵀ + Rbh) (linear_before_reset 0) or g(Xh + r ⊙ (H·Rhᵀ + Rbh)) (1),
/// H = (1 − z) ⊙ ĥ + z ⊙ H. gates [steps, batch, 3·hidden] hold X·Wᵀ + Wb + Rb for z and r and
/// X·Wᵀ + Wbh for h (overwritten); rzr: R's z and r rows [2·hidden, hidden], rh: its h rows
/// [hidden, hidden]; rbh [hidden] (nil: zeros); h and `worker` as for RNN.
public func gruSequence(_ s: RecurrenceShape, gates: UnsafeMutablePointer<Float>, rzr: RecurrentProduct, rh: RecurrentProduct,
                        rbh: UnsafePointer<Float>?, linearBeforeReset: Bool, h: UnsafeMutablePointer<Float>, f: RecurrentActivation,
                        g: RecurrentActivation, y: RecurrentOutput?, worker: Int) {
    let n = s.hidden, width = 3 * n
    // Per row: H·Rzrᵀ (2·hidden), then H or r ⊙ H (hidden), then its product with Rhᵀ (hidden).
    withStepScratch(s.batch * 4 * n) { scratch in
        let zr = scratch, gated = scratch + s.batch * 2 * n, candidates = gated + s.batch * n
        s.forEachStep { t in
            let gt = gates + t * s.batch * width
            rzr.multiply(m: s.batch, h: h, into: zr, worker: worker)
            for b in 0..<s.batch {
                let gb = gt + b * width, pb = zr + b * 2 * n
                for j in 0..<(2 * n) { gb[j] += pb[j] }
                s.clipped(gb, count: 2 * n)
                f.apply(gb, count: 2 * n)
                let reset = gb + n, hb = h + b * n, rowGated = gated + b * n
                for j in 0..<n { rowGated[j] = linearBeforeReset ? hb[j] : reset[j] * hb[j] }
            }
            rh.multiply(m: s.batch, h: gated, into: candidates, worker: worker)
            for b in 0..<s.batch where s.isActive(row: b, step: t) {
                let gb = gt + b * width, candidate = gb + 2 * n, reset = gb + n, pb = candidates + b * n, hb = h + b * n
                for j in 0..<n {
                    let recurrent = pb[j] + (rbh?[j] ?? 0)
                    candidate[j] += linearBeforeReset ? reset[j] * recurrent : recurrent
                }
                s.clipped(candidate, count: n)
                g.apply(candidate, count: n)
                for j in 0..<n { hb[j] = (1 - gb[j]) * candidate[j] + gb[j] * hb[j] }
            }
            write(y, step: t, state: h, s)
        }
    }
    zeroEmptyRows([h], s)
}

/// LSTM: i = f(Xi + H·Riᵀ + Pi ⊙ C), f_ = f(Xf + H·Rfᵀ + Pf ⊙ C) (1 − i with input_forget),
/// c = g(Xc + H·Rcᵀ), C = f_ ⊙ C + i ⊙ c, o = f(Xo + H·Roᵀ + Po ⊙ C), H = o ⊙ h(C).
/// gates [steps, batch, 4·hidden] hold X·Wᵀ + Wb + Rb (overwritten); r: R [4·hidden, hidden];
/// peepholes [3·hidden] (Pi, Po, Pf) or nil; h and c [batch, hidden]: initial state in, last
/// out; `worker` as for RNN.
public func lstmSequence(_ s: RecurrenceShape, gates: UnsafeMutablePointer<Float>, r: RecurrentProduct,
                         peepholes: UnsafePointer<Float>?, inputForget: Bool, h: UnsafeMutablePointer<Float>,
                         c: UnsafeMutablePointer<Float>, f: RecurrentActivation, g: RecurrentActivation, hAct: RecurrentActivation,
                         y: RecurrentOutput?, worker: Int) {
    let n = s.hidden, width = 4 * n
    withStepScratch(s.batch * width) { product in
        s.forEachStep { t in
            let gt = gates + t * s.batch * width
            r.multiply(m: s.batch, h: h, into: product, worker: worker)
            for b in 0..<s.batch where s.isActive(row: b, step: t) {
                let gb = gt + b * width, pb = product + b * width, cb = c + b * n, hb = h + b * n
                let input = gb, output = gb + n, forget = gb + 2 * n, cell = gb + 3 * n
                for j in 0..<width { gb[j] += pb[j] }
                if let p = peepholes {
                    for j in 0..<n {
                        input[j] += p[j] * cb[j]
                        forget[j] += p[2 * n + j] * cb[j]
                    }
                }
                s.clipped(input, count: n)
                f.apply(input, count: n)
                if inputForget {
                    for j in 0..<n { forget[j] = 1 - input[j] }
                } else {
                    s.clipped(forget, count: n)
                    f.apply(forget, count: n)
                }
                s.clipped(cell, count: n)
                g.apply(cell, count: n)
                for j in 0..<n { cb[j] = forget[j] * cb[j] + input[j] * cell[j] }
                if let p = peepholes { for j in 0..<n { output[j] += p[n + j] * cb[j] } }
                s.clipped(output, count: n)
                f.apply(output, count: n)
                cell.update(from: cb, count: n)  // h(C), computed where c was
                hAct.apply(cell, count: n)
                for j in 0..<n { hb[j] = output[j] * cell[j] }
            }
            write(y, step: t, state: h, s)
        }
    }
    zeroEmptyRows([h, c], s)
}

/// Runs `body` with a buffer of `count` floats (at least one) for the steps' products.
private func withStepScratch(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) {
    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(1, count))
    defer { buffer.deallocate() }
    body(buffer)
}

/// Y at step t: the state's rows that are active at t, zeros for the others.
private func write(_ y: RecurrentOutput?, step t: Int, state h: UnsafePointer<Float>, _ s: RecurrenceShape) {
    guard let y else { return }
    let out = y.base + t * y.stepStride, n = s.hidden
    for b in 0..<s.batch {
        if s.isActive(row: b, step: t) { (out + b * n).update(from: h + b * n, count: n) } else { (out + b * n).update(repeating: 0, count: n) }
    }
}

/// Rows of length 0 end with a zero state (as ONNX Runtime's), not the initial one.
private func zeroEmptyRows(_ states: [UnsafeMutablePointer<Float>], _ s: RecurrenceShape) {
    guard let lengths = s.lengths else { return }
    for b in 0..<s.batch where lengths[b] == 0 {
        for state in states { (state + b * s.hidden).update(repeating: 0, count: s.hidden) }
    }
}
