import KerfCore

/// Tile and constant-mode Pad, through standard ops:
/// - Tile: dY reshaped to [r0, x0, r1, x1, ...] (repeats interleaved with X's dims) and summed
///   over the repeat axes;
/// - Pad: dY padded with the negated pads (negative pads crop what the forward added, positive
///   ones put zeros where it cropped). The constant value gets no gradient.
enum TileAndPadGradients {
    static func register(_ r: inout [String: GradientRule]) {
        r["Tile"] = { c in [try tile(c), nil] }
        r["Pad"] = { c in [try pad(c), nil, nil, nil] }
    }

    private static func tile(_ c: GradientContext) throws -> String {
        let e = c.emitter
        let rank = try e.requireRank(of: c.input(0), for: c.node)
        guard rank > 0 else { return c.dY }
        let interleaved: String
        if let repeats = c.knownInts(1), repeats.count == rank, let shape = e.types.staticShape(of: c.input(0)) {
            if repeats.allSatisfy({ $0 == 1 }) { return c.dY }
            interleaved = e.int64s((0..<rank).flatMap { [repeats[$0], shape[$0]] })
        } else {
            // [r0, x0, r1, x1, ...] from the repeats and Shape(X) as columns of a [rank, 2] matrix.
            let column = e.int64s([-1, 1])
            let repeats = e.emit1("Reshape", [c.input(1), column], hint: c.hint("repeats"))
            let dims = e.emit1("Reshape", [e.shape(of: c.input(0)), column], hint: c.hint("dims"))
            let pairs = e.emit1("Concat", [repeats, dims], [Attribute(name: "axis", value: .int(1))], hint: c.hint("pairs"))
            interleaved = e.emit1("Reshape", [pairs, e.int64s([-1])], hint: c.hint("interleaved"))
        }
        let split = e.emit1("Reshape", [c.dY, interleaved], hint: c.hint("tiles"))
        return e.reduceSum(split, axes: (0..<rank).map { 2 * $0 }, keepDims: false, hint: c.hint("dX"))
    }

    private static func pad(_ c: GradientContext) throws -> String {
        let e = c.emitter
        let mode = c.node.attribute("mode").flatMap { v -> String? in
            if case .string(let d) = v { return String(decoding: d, as: UTF8.self) }
            return nil
        } ?? "constant"
        guard mode == "constant" else { throw KerfError.unsupported("the gradient of Pad in \(mode) mode") }
        if e.opset < 11 {
            guard let pads = try c.ints("pads") else { throw KerfError.invalidModel("\(c.node.label): Pad needs pads") }
            return e.emit1("Pad", [c.dY], [Attribute(name: "pads", value: .ints(pads.map { Int64(-$0) }))], hint: c.hint("dX"))
        }
        let negated = c.knownInts(1).map { e.int64s($0.map { -$0 }) } ?? e.neg(c.input(1), hint: c.hint("negpads"))
        // Zero fill (no constant_value input); the axes as the forward's (opset 18).
        let inputs = [c.dY, negated] + (c.has(3) ? ["", c.input(3)] : [])
        return e.emit1("Pad", inputs, hint: c.hint("dX"))
    }
}
