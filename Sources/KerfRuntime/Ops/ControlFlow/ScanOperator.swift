import KerfCore

/// ONNX Scan over tensors.
///
/// From opset 9: inputs are N initial state values, then the M scan inputs (`num_scan_inputs`),
/// each scanned along `scan_input_axes[j]` (default 0; negative counts from the end) in
/// `scan_input_directions[j]` (0 forward, 1 reverse); all must have the same length L along
/// their axis. The body takes (N states, M slices with the scanned axis removed) and returns
/// (N states, K scan values). Outputs: the N final states (the initial ones when L is 0), then
/// the K scan outputs: the per-iteration values stacked along a new axis `scan_output_axes[k]`
/// (default 0; negative counts from the end of the stacked rank), in iteration order or, for
/// `scan_output_directions[k]` 1, reversed.
///
/// Opset 8 adds a batch axis 0 to every input and output and an optional first input
/// `sequence_lens` (int64 [batch], each from 1 to the length of axis 1, as ONNX Runtime
/// requires; default: every sequence full): batch row b scans the first `sequence_lens[b]`
/// elements of axis 1 of its scan inputs (in `directions[j]`), and its scan outputs are padded
/// with zeros to the full length.
struct ScanOperator: Operator {
    let body: SubgraphPlan
    /// Opset 8's form: `sequence_lens` first, a batch axis 0 everywhere.
    let batched: Bool
    let stateCount: Int
    let inputAxes: [Int], inputReversed: [Bool]
    let outputAxes: [Int], outputReversed: [Bool]
    let implicitStart: Int

    init(_ c: OperatorContext) throws {
        body = try c.subgraphPlan("body")
        batched = c.opset < 9
        let node = c.node
        let dataInputs = node.inputs.count - (batched ? 1 : 0)
        guard let m = try c.int("num_scan_inputs") else { throw KerfError.invalidModel("attribute 'num_scan_inputs' is missing") }
        guard m >= 1, m <= dataInputs else {
            throw KerfError.invalidModel("num_scan_inputs \(m) must be between 1 and the node's \(dataInputs) state and scan inputs")
        }
        stateCount = dataInputs - m
        let scanOutputs = node.outputs.count - stateCount
        guard body.inputs.count == dataInputs else {
            throw KerfError.invalidModel("the body declares \(body.inputs.count) inputs; it must take the node's \(stateCount) states "
                                         + "and \(m) scan inputs")
        }
        guard scanOutputs >= 0, body.outputs.count == node.outputs.count else {
            throw KerfError.invalidModel("the body has \(body.outputs.count) outputs and the node \(node.outputs.count); "
                                         + "both must be the \(stateCount) states followed by the scan outputs")
        }
        func list(_ name: String, count: Int, what: String) throws -> [Int] {
            guard let values = try c.ints(name) else { return [Int](repeating: 0, count: count) }
            guard values.count == count else {
                throw KerfError.invalidModel("attribute '\(name)' has \(values.count) values; it needs one per scan \(what) (\(count))")
            }
            return values
        }
        func directions(_ name: String, count: Int, what: String) throws -> [Bool] {
            try list(name, count: count, what: what).map { d in
                guard d == 0 || d == 1 else { throw KerfError.invalidModel("attribute '\(name)' holds \(d); directions are 0 (forward) or 1 (reverse)") }
                return d == 1
            }
        }
        if batched {
            inputAxes = [Int](repeating: 0, count: m)
            inputReversed = try directions("directions", count: m, what: "input")
            outputAxes = [Int](repeating: 0, count: scanOutputs)
            outputReversed = [Bool](repeating: false, count: scanOutputs)
        } else {
            inputAxes = try list("scan_input_axes", count: m, what: "input")
            inputReversed = try directions("scan_input_directions", count: m, what: "input")
            outputAxes = try list("scan_output_axes", count: scanOutputs, what: "output")
            outputReversed = try directions("scan_output_directions", count: scanOutputs, what: "output")
        }
        implicitStart = node.inputs.count
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let implicit = inputs[min(implicitStart, inputs.count)...]
        let first = batched ? 1 : 0
        let states = try (0..<stateCount).map { try inputs.required(first + $0, "state \($0)") }
        let sequences = try inputAxes.indices.map { try inputs.required(first + stateCount + $0, "scan input \($0)") }
        guard batched else { return try scan(states: states, sequences: sequences, length: nil, implicit: implicit) }
        return try runBatched(states: states, sequences: sequences, lengths: inputs.optional(0), implicit: implicit)
    }

    /// Opset 8: `scan` per batch row, its scan outputs padded to the full length, the rows
    /// stacked again.
    private func runBatched(states: [Tensor], sequences: [Tensor], lengths: Tensor?, implicit: ArraySlice<Tensor?>) throws -> [Tensor] {
        guard let x = sequences.first, x.rank >= 2 else { throw KerfError.invalidArgument("scan inputs need a batch and a sequence axis") }
        let batch = x.shape[0], full = x.shape[1]
        for (j, t) in (states + sequences).enumerated() where t.rank < 1 || t.shape[0] != batch {
            throw KerfError.shapeMismatch("input \(j + 1) has shape \(t.shape); every state and scan input needs the batch size \(batch) as axis 0")
        }
        var rowLengths = [Int](repeating: full, count: batch)
        if let lengths {
            rowLengths = try intValues(lengths, "sequence_lens")
            guard rowLengths.count == batch, rowLengths.allSatisfy({ (1...max(full, 1)).contains($0) }) else {
                throw KerfError.invalidArgument("sequence_lens \(rowLengths) must hold \(batch) lengths between 1 and \(full)")
            }
        }
        func row(_ t: Tensor, _ b: Int) throws -> Tensor { try gather(t, Tensor(scalar: Int64(b)), axis: 0) }
        var rows: [[Tensor]] = []
        for b in 0..<batch {
            let length = rowLengths[b]
            var results = try scan(states: states.map { try row($0, b) },
                                   sequences: sequences.map { try sliceAxis0(row($0, b), count: length) },
                                   length: length, implicit: implicit)
            for k in outputAxes.indices where length < full {
                let part = results[stateCount + k]
                var padding = part.shape
                padding[0] = full - length
                results[stateCount + k] = try concat([part, Tensor(zeros: part.dtype, shape: padding)], axis: 0)
            }
            rows.append(results)
        }
        return try (0..<(stateCount + outputAxes.count)).map { k in
            try stackIterations(rows.map { $0[k] }, axis: 0, declared: body.outputs[k])
        }
    }

    /// The scan itself on unbatched `states` and `sequences` (`length`: their common length
    /// along the scanned axes when known): final states, then the stacked scan outputs.
    private func scan(states initial: [Tensor], sequences: [Tensor], length known: Int?, implicit: ArraySlice<Tensor?>) throws -> [Tensor] {
        var axes: [Int] = []
        var length = known
        for (j, x) in sequences.enumerated() {
            let axis = try normalizeAxis(inputAxes[j], rank: x.rank, what: "scan_input_axes[\(j)]")
            if let length, x.shape[axis] != length {
                throw KerfError.shapeMismatch("scan input \(j) has \(x.shape[axis]) elements along axis \(axis), the scan \(length)")
            }
            length = x.shape[axis]
            axes.append(axis)
        }
        let steps = length ?? 0
        var states = initial
        var scans = [[Tensor]](repeating: [], count: outputAxes.count)
        for t in 0..<steps {
            let slices = try sequences.indices.map { j in
                try gather(sequences[j], Tensor(scalar: Int64(inputReversed[j] ? steps - 1 - t : t)), axis: axes[j])
            }
            var results = try body.run(states + slices, implicit: implicit)
            guard results.count == stateCount + scans.count else { throw KerfError.internal("the body returned \(results.count) values") }
            for k in scans.indices.reversed() { scans[k].append(results.removeLast()) }
            for (k, value) in results.enumerated() where value.dtype != states[k].dtype {
                throw KerfError.invalidModel("state \(k) changes dtype from \(states[k].dtype) to \(value.dtype)")
            }
            states = results
        }
        let scanOutputs = try scans.enumerated().map { k, parts in
            let declared = body.outputs[stateCount + k]
            let rank = (parts.first?.rank ?? declared.shape?.count ?? 0) + 1
            let axis = try normalizeAxis(outputAxes[k], rank: rank, what: "scan_output_axes[\(k)]")
            return try stackIterations(outputReversed[k] ? parts.reversed() : parts, axis: axis, declared: declared)
        }
        return states + scanOutputs
    }
}

/// The first `count` elements of `x` along axis 0.
private func sliceAxis0(_ x: Tensor, count: Int) throws -> Tensor {
    guard count < x.shape[0] else { return x }
    return try gather(x, Tensor(shape: [count], values: (0..<Int64(count)).map { $0 }), axis: 0)
}
