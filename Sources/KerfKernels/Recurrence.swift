// One direction of ONNX's recurrent ops (RNN, GRU, LSTM) over a batch of sequences, as plain
// functions over float buffers. The caller projects the inputs first: gates[t, b, :] =
// X[t, b, :]·Wᵀ + biases for every step at once (`recurrentInputProjection`, one GEMM); each
// step then adds H·Rᵀ (a GEMM of [batch, hidden] by [hidden, G·hidden]) and applies the gate
// math row by row. Gate orders are ONNX's: RNN [i], GRU [z, r, h], LSTM [i, o, f, c].

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

/// RNN: H = f(gates + H·Rᵀ) per step. gates [steps, batch, hidden] (overwritten), r [hidden,
/// hidden], h [batch, hidden]: the initial state in, the last state out.
public func rnnSequence(_ s: RecurrenceShape, gates: UnsafeMutablePointer<Float>, r: UnsafePointer<Float>,
                        h: UnsafeMutablePointer<Float>, f: RecurrentActivation, y: RecurrentOutput?) {
    let n = s.hidden
    s.forEachStep { t in
        let g = gates + t * s.batch * n
        sgemm(transA: false, transB: true, m: s.batch, n: n, k: n, alpha: 1, a: h, lda: n, b: r, ldb: n, beta: 1, c: g, ldc: n)
        for b in 0..<s.batch where s.isActive(row: b, step: t) {
            let gb = g + b * n
            s.clipped(gb, count: n)
            f.apply(gb, count: n)
            (h + b * n).update(from: gb, count: n)
        }
        write(y, step: t, state: h, s)
    }
    zeroEmptyRows([h], s)
}

/// GRU: z = f(Xz + H·Rzᵀ), r = f(Xr + H·Rrᵀ), then
/// ĥ = g(Xh + (r ⊙ H)·Rhᵀ + Rbh) (linear_before_reset 0) or g(Xh + r ⊙ (H·Rhᵀ + Rbh)) (1),
/// H = (1 − z) ⊙ ĥ + z ⊙ H. gates [steps, batch, 3·hidden] hold X·Wᵀ + Wb + Rb for z and r and
/// X·Wᵀ + Wbh for h (overwritten); r [3·hidden, hidden]; rbh [hidden] (nil: zeros); h as for RNN.
public func gruSequence(_ s: RecurrenceShape, gates: UnsafeMutablePointer<Float>, r: UnsafePointer<Float>, rbh: UnsafePointer<Float>?,
                        linearBeforeReset: Bool, h: UnsafeMutablePointer<Float>, f: RecurrentActivation, g: RecurrentActivation,
                        y: RecurrentOutput?) {
    let n = s.hidden, width = 3 * n
    // Per row: H·Rᵀ for the three gates (linear_before_reset), or r ⊙ H (the other form).
    let product = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(1, s.batch * width))
    defer { product.deallocate() }
    let rh = r + 2 * n * n
    s.forEachStep { t in
        let gt = gates + t * s.batch * width
        if linearBeforeReset {
            sgemm(transA: false, transB: true, m: s.batch, n: width, k: n, alpha: 1, a: h, lda: n, b: r, ldb: n, beta: 0, c: product,
                  ldc: width)
        } else {
            sgemm(transA: false, transB: true, m: s.batch, n: 2 * n, k: n, alpha: 1, a: h, lda: n, b: r, ldb: n, beta: 1, c: gt,
                  ldc: width)
        }
        for b in 0..<s.batch {
            let gb = gt + b * width, pb = product + b * width
            if linearBeforeReset { for j in 0..<(2 * n) { gb[j] += pb[j] } }
            s.clipped(gb, count: 2 * n)
            f.apply(gb, count: 2 * n)
            let reset = gb + n, hb = h + b * n
            if linearBeforeReset {
                for j in 0..<n { gb[2 * n + j] += reset[j] * (pb[2 * n + j] + (rbh?[j] ?? 0)) }
            } else {
                for j in 0..<n { pb[j] = reset[j] * hb[j] }
            }
        }
        if !linearBeforeReset {
            // ĥ's pre-activation += (r ⊙ H)·Rhᵀ + Rbh, for all rows at once.
            sgemm(transA: false, transB: true, m: s.batch, n: n, k: n, alpha: 1, a: product, lda: width, b: rh, ldb: n, beta: 1,
                  c: gt + 2 * n, ldc: width)
        }
        for b in 0..<s.batch where s.isActive(row: b, step: t) {
            let gb = gt + b * width, candidate = gb + 2 * n, hb = h + b * n
            if !linearBeforeReset, let rbh { for j in 0..<n { candidate[j] += rbh[j] } }
            s.clipped(candidate, count: n)
            g.apply(candidate, count: n)
            for j in 0..<n { hb[j] = (1 - gb[j]) * candidate[j] + gb[j] * hb[j] }
        }
        write(y, step: t, state: h, s)
    }
    zeroEmptyRows([h], s)
}

/// LSTM: i = f(Xi + H·Riᵀ + Pi ⊙ C), f_ = f(Xf + H·Rfᵀ + Pf ⊙ C) (1 − i with input_forget),
/// c = g(Xc + H·Rcᵀ), C = f_ ⊙ C + i ⊙ c, o = f(Xo + H·Roᵀ + Po ⊙ C), H = o ⊙ h(C).
/// gates [steps, batch, 4·hidden] hold X·Wᵀ + Wb + Rb (overwritten); r [4·hidden, hidden];
/// peepholes [3·hidden] (Pi, Po, Pf) or nil; h and c [batch, hidden]: initial state in, last out.
public func lstmSequence(_ s: RecurrenceShape, gates: UnsafeMutablePointer<Float>, r: UnsafePointer<Float>,
                         peepholes: UnsafePointer<Float>?, inputForget: Bool, h: UnsafeMutablePointer<Float>,
                         c: UnsafeMutablePointer<Float>, f: RecurrentActivation, g: RecurrentActivation, hAct: RecurrentActivation,
                         y: RecurrentOutput?) {
    let n = s.hidden, width = 4 * n
    s.forEachStep { t in
        let gt = gates + t * s.batch * width
        sgemm(transA: false, transB: true, m: s.batch, n: width, k: n, alpha: 1, a: h, lda: n, b: r, ldb: n, beta: 1, c: gt, ldc: width)
        for b in 0..<s.batch where s.isActive(row: b, step: t) {
            let gb = gt + b * width, cb = c + b * n, hb = h + b * n
            let input = gb, output = gb + n, forget = gb + 2 * n, cell = gb + 3 * n
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
    zeroEmptyRows([h, c], s)
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
