import KerfCore
import KerfKernels

// RNN, GRU and LSTM (ONNX's recurrent ops): forward, reverse or bidirectional, with optional
// sequence_lens, initial states and LSTM peepholes, batch-first or not (`layout`). The
// directions run in parallel, each one GEMM over all steps for X·Wᵀ and then one small GEMM
// and the gate math per step (Recurrence.swift). float16/bfloat16 compute in float32.

enum RecurrentOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        for kind in [RecurrentKind.rnn, .gru, .lstm] {
            r[kind.rawValue] = { c in try RecurrentOperator(c, kind: kind) }
        }
    }
}

/// One RNN, GRU or LSTM node. With D directions, G gates and H = hidden size:
/// - inputs X [steps, batch, input], W [D, G·H, input], R [D, G·H, H], B [D, 2·G·H] (Wb then
///   Rb), sequence_lens [batch] (int32/int64, each in 0...steps), initial_h [D, batch, H], and
///   for LSTM initial_c [D, batch, H] and P [D, 3·H] (peepholes i, o, f);
/// - outputs Y [steps, D, batch, H], Y_h [D, batch, H], LSTM's Y_c [D, batch, H].
/// With `layout` 1, X is [batch, steps, input], the states [batch, D, H], Y [batch, steps, D, H].
final class RecurrentOperator: Operator {
    let attributes: RecurrentAttributes
    private let outputs: [String]
    private let threads: Int
    /// R when it is a float constant of the session: its products are packed once.
    private let constantR: Tensor?
    private var packedR: [[RecurrentProduct]]?

    init(_ c: OperatorContext, kind: RecurrentKind) throws {
        attributes = try RecurrentAttributes(c, kind: kind)
        outputs = c.node.outputs
        threads = c.options.resolvedThreads
        constantR = c.constant(2).flatMap { $0.dtype == .float ? $0 : nil }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        try withFloat32(inputs) { try compute($0) }
    }

    /// The checked inputs, laid out with steps first (layout 0).
    private struct Inputs {
        var x: Tensor, w: Tensor, r: Tensor, b: Tensor?, lengths: [Int]?, initialH: Tensor?, initialC: Tensor?, peepholes: Tensor?
        var steps: Int, batch: Int, inputSize: Int, hidden: Int
    }

    private func compute(_ ins: [Tensor?]) throws -> [Tensor] {
        let a = attributes, d = a.directions, i = try checked(ins)
        let n = i.hidden, width = a.kind.gates * n
        let stateShape = [d, i.batch, n]
        try checkedElementCount([i.steps, d, i.batch, n], dtype: .float, a.kind.rawValue)
        try checkedElementCount([d, i.steps, i.batch, width], dtype: .float, "\(a.kind.rawValue) gates")
        let wantsY = !(outputs.first ?? "").isEmpty
        let y = try Tensor(zeros: .float, shape: wantsY ? [i.steps, d, i.batch, n] : [0])
        let yh = try Tensor(zeros: .float, shape: stateShape)
        let yc = try Tensor(zeros: .float, shape: a.kind == .lstm ? stateShape : [0])
        let gates = try Tensor(uninitialized: .float, shape: [d, i.steps * i.batch, width])
        let p = { (t: Tensor?) in t.map { UnsafeMutablePointer($0.storage.pointer.assumingMemoryBound(to: Float.self)) } }
        let (xp, wp, bp, pp) = (p(i.x)!, p(i.w)!, p(i.b), p(i.peepholes))
        let (yp, yhp, ycp, gp, h0, c0) = (p(y)!, p(yh)!, p(yc)!, p(gates)!, p(i.initialH), p(i.initialC))
        let products = recurrentProducts(i.r, hidden: n)
        parallelFor(d, threads: min(threads, d)) { worker, dir in
            let state = dir * i.batch * n
            let s = RecurrenceShape(steps: i.steps, batch: i.batch, hidden: n, reverse: a.reverseOnly || dir == 1, lengths: i.lengths,
                                    clip: a.clip)
            let g = gp + dir * i.steps * i.batch * width
            let bias = bp.map { projectionBias($0 + dir * 2 * width, hidden: n) } ?? []
            bias.withUnsafeBufferPointer { bias in
                recurrentInputProjection(xp, wp + dir * width * i.inputSize, bias: bias.isEmpty ? nil : bias.baseAddress, gates: g,
                                         rows: i.steps * i.batch, inputSize: i.inputSize, width: width)
            }
            let h = yhp + state, out = wantsY ? RecurrentOutput(base: yp + state, stepStride: d * i.batch * n) : nil
            if let h0 { h.update(from: h0 + state, count: i.batch * n) }
            let f = a.activations[dir], r = products[dir]
            switch a.kind {
            case .rnn:
                rnnSequence(s, gates: g, r: r[0], h: h, f: f[0], y: out, worker: worker)
            case .gru:
                gruSequence(s, gates: g, rzr: r[0], rh: r[1], rbh: bp.map { $0 + dir * 2 * width + width + 2 * n },
                            linearBeforeReset: a.linearBeforeReset, h: h, f: f[0], g: f[1], y: out, worker: worker)
            case .lstm:
                if let c0 { (ycp + state).update(from: c0 + state, count: i.batch * n) }
                lstmSequence(s, gates: g, r: r[0], peepholes: pp.map { $0 + dir * 3 * n }, inputForget: a.inputForget, h: h, c: ycp + state,
                             f: f[0], g: f[1], hAct: f[2], y: out, worker: worker)
            }
        }
        var results = [y, yh] + (a.kind == .lstm ? [yc] : [])
        if a.batchFirst {
            results[0] = wantsY ? try transpose(y, perm: [2, 0, 1, 3], threads: threads) : y
            for k in 1..<results.count { results[k] = try transpose(results[k], perm: [1, 0, 2], threads: threads) }
        }
        return Array(results.prefix(outputs.count))
    }

    /// Per direction, H·Rᵀ over R's gate blocks: all gates in one (RNN, LSTM), or GRU's z and r
    /// rows, then its h rows. Made once for the session's constant R (which outlives them),
    /// per run for another.
    private func recurrentProducts(_ r: Tensor, hidden n: Int) -> [[RecurrentProduct]] {
        let constant = constantR.map { $0.storage === r.storage && $0.shape == r.shape } ?? false
        if constant, let packedR { return packedR }
        let gates = attributes.kind.gates, base = UnsafePointer(r.storage.pointer.assumingMemoryBound(to: Float.self))
        let blocks = attributes.kind == .gru ? [(0, 2 * n), (2 * n, n)] : [(0, gates * n)]
        let products = (0..<attributes.directions).map { dir in
            blocks.map { first, rows in RecurrentProduct(r: base + (dir * gates * n + first) * n, rows: rows, hidden: n) }
        }
        if constant { packedR = products }
        return products
    }

    /// Wb + Rb per gate, GRU's h gate without Rbh (the kernel adds it where the form needs it).
    private func projectionBias(_ b: UnsafePointer<Float>, hidden n: Int) -> [Float] {
        let width = attributes.kind.gates * n
        return (0..<width).map { j in attributes.kind == .gru && j >= 2 * n ? b[j] : b[j] + b[width + j] }
    }
}

extension RecurrentOperator {
    /// The inputs checked against each other and the attributes, batch-first ones transposed.
    private func checked(_ ins: [Tensor?]) throws -> Inputs {
        let a = attributes, op = a.kind.rawValue, d = a.directions, lstm = a.kind == .lstm
        let x = try ins.required(0, "X"), w = try ins.required(1, "W"), r = try ins.required(2, "R")
        let b = ins.optional(3) ?? nil, lengths = ins.optional(4) ?? nil, h0 = ins.optional(5) ?? nil
        let c0 = lstm ? ins.optional(6) ?? nil : nil, p = lstm ? ins.optional(7) ?? nil : nil
        for (t, name) in [(x, "X"), (w, "W"), (r, "R"), (b, "B"), (h0, "initial_h"), (c0, "initial_c"), (p, "P")] {
            if let t, t.dtype != .float { throw KerfError.unsupported("\(op) supports float types, got \(t.dtype) \(name)") }
        }
        guard x.rank == 3 else { throw KerfError.shapeMismatch("\(op) X \(x.shape) must have rank 3") }
        let (steps, batch, inputSize) = a.batchFirst ? (x.shape[1], x.shape[0], x.shape[2]) : (x.shape[0], x.shape[1], x.shape[2])
        guard r.rank == 3 else { throw KerfError.shapeMismatch("\(op) R \(r.shape) must have rank 3") }
        let hidden = a.hiddenSize ?? r.shape[2]
        let (width, overflow) = hidden.multipliedReportingOverflow(by: a.kind.gates)
        guard !overflow, hidden > 0 else { throw KerfError.shapeMismatch("\(op): hidden size \(hidden) is out of range") }
        func expect(_ t: Tensor?, _ name: String, _ shape: [Int]) throws {
            if let t, t.shape != shape { throw KerfError.shapeMismatch("\(op) \(name) \(t.shape) must be \(shape)") }
        }
        try expect(r, "R", [d, width, hidden])
        try expect(w, "W", [d, width, inputSize])
        try expect(b, "B", [d, 2 * width])
        let state = a.batchFirst ? [batch, d, hidden] : [d, batch, hidden]
        try expect(h0, "initial_h", state)
        try expect(c0, "initial_c", state)
        try expect(p, "P", [d, 3 * hidden])
        var lens: [Int]?
        if let lengths {
            guard lengths.shape == [batch] else { throw KerfError.shapeMismatch("\(op) sequence_lens \(lengths.shape) must be [\(batch)]") }
            lens = try intValues(lengths, "\(op) sequence_lens")
            if let bad = lens!.first(where: { $0 < 0 || $0 > steps }) {
                throw KerfError.invalidArgument("\(op) sequence_lens holds \(bad), outside 0...\(steps) (the sequence length)")
            }
        }
        let major = { (t: Tensor?) throws -> Tensor? in try t.map { a.batchFirst ? try transpose($0, perm: [1, 0, 2], threads: self.threads) : $0 } }
        return Inputs(x: try major(x)!, w: w, r: r, b: b, lengths: lens, initialH: try major(h0), initialC: try major(c0), peepholes: p,
                      steps: steps, batch: batch, inputSize: inputSize, hidden: hidden)
    }
}
