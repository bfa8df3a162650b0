import KerfCore
import KerfKernels

// kerf.ScaledMaskedSoftmax(X float [..., n], c float scalar, Mask float) -> Y [..., n], attribute
// multiply (0: divide): Y = Softmax(X / c + Mask) (or X * c) over the last axis — an attention's
// scores scaled and masked, as the optimizer fuses Div (Mul) -> Add -> Softmax. Mask broadcasts to
// X (its dims 1 or X's, right-aligned, rank <= X's). Each element takes the same two roundings as
// the Div and the Add, then the Softmax kernel, so Y is what the three operators give.

enum AttentionOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["\(FusedQuantizedOps.domain):ScaledMaskedSoftmax"] = { c in
            guard let scalar = c.constant(1), scalar.dtype == .float, scalar.count == 1 else {
                throw KerfError.invalidModel("\(c.node.label): the scale must be one float constant")
            }
            let factor = scalar.array(of: Float.self)[0], multiply = try c.int("multiply", default: 0) != 0
            let threads = c.options.resolvedThreads
            // The three operators themselves, for inputs the fused loop does not take (other
            // types, a mask that widens the result).
            func op(_ type: String, _ inputs: [String], _ constants: [Tensor?], _ attributes: [Attribute] = []) throws -> Operator {
                let node = Node(name: c.node.name, opType: type, inputs: inputs, outputs: ["y"], attributes: attributes)
                return try OperatorRegistry.makeOperator(OperatorContext(node: node, opset: c.opset, constantInputs: constants, options: c.options))
            }
            let scale = try op(multiply ? "Mul" : "Div", ["x", "c"], [nil, scalar]), add = try op("Add", ["s", "m"], [nil, nil])
            let softmaxOp = try op("Softmax", ["a"], [nil], [Attribute(name: "axis", value: .int(-1))])
            return ClosureOperator.consuming { inputs in
                var x = try inputs.takeRequired(0)
                let mask = try inputs.required(2, "Mask")
                guard x.dtype == .float, mask.dtype == .float, x.rank >= 1, mask.rank <= x.rank,
                      zip(mask.shape.reversed(), x.shape.reversed()).allSatisfy({ $0 == 1 || $0 == $1 }) else {
                    let scaled = try scale.run([x, scalar])[0]
                    return try softmaxOp.run([try add.run([scaled, mask])[0]])
                }
                let offsets = try maskRowOffsets(x.shape, mask.shape)
                let n = x.shape[x.rank - 1], rows = n == 0 ? 0 : x.count / n
                let out = try x.isUniquelyOwned() ? x : Tensor(uninitialized: .float, shape: x.shape)
                let xp = x.storage.pointer.assumingMemoryBound(to: Float.self), mp = mask.storage.pointer.assumingMemoryBound(to: Float.self)
                let yp = out.storage.pointer.assumingMemoryBound(to: Float.self)
                let maskPerElement = mask.rank > 0 && mask.shape[mask.rank - 1] == n && n != 1
                parallelRanges(rows, threads: threads, grain: max(1, 16384 / max(n, 1))) { range in
                    for r in range {
                        scaleAndAddRow(xp + r * n, count: n, factor, multiply: multiply, mask: mp + offsets(r),
                                       maskPerElement: maskPerElement, into: yp + r * n)
                    }
                    softmax(yp + range.lowerBound * n, yp + range.lowerBound * n, outer: range.count, n: n, inner: 1, log: false)
                }
                return [out]
            }
        }
    }
}

/// For row r of X (all dims but the last), the element offset of the Mask row it adds (Mask
/// broadcasting to X's shape).
private func maskRowOffsets(_ x: [Int], _ mask: [Int]) throws -> (Int) -> Int {
    let rank = x.count
    let padded = [Int](repeating: 1, count: rank - mask.count) + mask
    var strides = [Int](repeating: 0, count: rank)
    var s = 1
    for d in stride(from: rank - 1, through: 0, by: -1) {
        strides[d] = padded[d] == 1 ? 0 : s
        s *= padded[d]
    }
    let leading = Array(x.dropLast()), leadingStrides = Array(strides.dropLast())
    return { r in
        var rest = r, offset = 0
        for d in stride(from: leading.count - 1, through: 0, by: -1) {
            offset += (rest % leading[d]) * leadingStrides[d]
            rest /= leading[d]
        }
        return offset
    }
}
