import KerfCore
import KerfKernels

// Einsum. Operands are contracted pairwise, left to right: repeated labels within one
// operand first take the diagonal, labels no one else needs are summed out, and each pair
// becomes one batched MatMul ([batch, M, K] x [batch, K, N]) after transposes. Ellipsis dims
// broadcast like numpy's. float16/bfloat16 compute in float32.

/// A parsed equation term: letter labels, with `nil` where "..." stands.
private typealias Term = [Character?]

private func parseTerm(_ text: Substring, _ equation: String) throws -> Term {
    var term: Term = []
    var chars = Array(text)
    var i = 0
    while i < chars.count {
        let ch = chars[i]
        if ch == "." {
            guard i + 2 < chars.count, chars[i + 1] == ".", chars[i + 2] == ".", !term.contains(where: { $0 == nil }) else {
                throw KerfError.invalidModel("Einsum equation '\(equation)' has a malformed ellipsis")
            }
            term.append(nil)
            i += 3
            continue
        }
        guard ch.isASCII, ch.isLetter else { throw KerfError.invalidModel("Einsum equation '\(equation)' has an invalid label '\(ch)'") }
        term.append(ch)
        i += 1
    }
    chars.removeAll()
    return term
}

private struct Equation {
    let inputs: [Term]
    let output: Term?  // nil: implicit output
}

private func parseEquation(_ raw: String) throws -> Equation {
    let equation = raw.filter { $0 != " " }
    let sides = equation.split(separator: "-", omittingEmptySubsequences: false)
    var lhs = Substring(equation), rhs: Substring? = nil
    if sides.count == 2 {
        guard sides[1].first == ">" else { throw KerfError.invalidModel("Einsum equation '\(raw)' is malformed") }
        lhs = sides[0]
        rhs = sides[1].dropFirst()
    } else if sides.count != 1 {
        throw KerfError.invalidModel("Einsum equation '\(raw)' is malformed")
    }
    let inputs = try lhs.split(separator: ",", omittingEmptySubsequences: false).map { try parseTerm($0, raw) }
    return Equation(inputs: inputs, output: try rhs.map { try parseTerm($0, raw) })
}

/// Label ids: letters by their ASCII value, ellipsis dims 256 + position within the ellipsis.
private func labelID(_ c: Character) -> Int { Int(c.asciiValue ?? 0) }

/// One operand while contracting: a dense tensor and the label of each of its dims.
private struct Operand {
    var tensor: Tensor
    var labels: [Int]
}

/// Takes the diagonal over every label that repeats within the operand.
private func diagonals(_ op: Operand) throws -> Operand {
    var op = op
    while let (p, q) = firstRepeat(op.labels) {
        let x = op.tensor
        guard x.shape[p] == x.shape[q] else {
            throw KerfError.shapeMismatch("Einsum label repeats over dims of sizes \(x.shape[p]) and \(x.shape[q])")
        }
        var strides = denseStrides(x.shape)
        strides[p] += strides[q]
        strides.remove(at: q)
        var shape = x.shape
        shape.remove(at: q)
        let out = try Tensor(uninitialized: x.dtype, shape: shape)
        stridedCopy(UnsafeRawPointer(x.storage.pointer), base: 0, strides: strides, shape: shape,
                    elementSize: x.dtype.byteSize, output: out.storage.pointer)
        op.labels.remove(at: q)
        op.tensor = out
    }
    return op
}

private func firstRepeat(_ labels: [Int]) -> (Int, Int)? {
    for q in 0..<labels.count {
        if let p = labels[..<q].firstIndex(of: labels[q]) { return (p, q) }
    }
    return nil
}

/// Transposes `op` so its labels come in `order` (a permutation of its labels).
private func arrange(_ op: Operand, _ order: [Int]) throws -> Tensor {
    if order == op.labels { return op.tensor }
    let perm = order.map { op.labels.firstIndex(of: $0)! }
    return try transpose(op.tensor, perm: perm)
}

private struct SumRows: NumericBody {
    let x: Tensor, rows: Int, length: Int
    func run<T: NumericElement>(_: T.Type) throws -> Tensor {
        var out = try Tensor(uninitialized: x.dtype, shape: [rows])
        x.withElements(as: T.self) { src in
            out.withMutableElements(as: T.self) { dst in
                for r in 0..<rows {
                    var s = T.zero
                    for j in 0..<length { s = T.add(s, src[r * length + j]) }
                    dst[r] = s
                }
            }
        }
        return out
    }
}

/// Sums out every label of `op` not in `keep`.
private func sumOut(_ op: Operand, keep: Set<Int>) throws -> Operand {
    let kept = op.labels.filter { keep.contains($0) }
    if kept.count == op.labels.count { return op }
    let summed = op.labels.filter { !keep.contains($0) }
    let x = try arrange(op, kept + summed)
    let keptShape = kept.map { op.tensor.shape[op.labels.firstIndex(of: $0)!] }
    let rows = keptShape.reduce(1, *)
    let length = rows == 0 ? 0 : x.count / rows
    let result = try dispatchNumeric(x.dtype, SumRows(x: x, rows: rows, length: length))
    return Operand(tensor: result.reshaped(keptShape), labels: kept)
}

private func einsum(_ equation: Equation, _ tensors: [Tensor], text: String) throws -> Tensor {
    guard equation.inputs.count == tensors.count else {
        throw KerfError.invalidArgument("Einsum equation '\(text)' names \(equation.inputs.count) operands, got \(tensors.count)")
    }
    guard let dtype = tensors.first?.dtype, tensors.allSatisfy({ $0.dtype == dtype }) else {
        throw KerfError.shapeMismatch("Einsum operands must share one dtype")
    }
    // Expand ellipses into labels, aligned to the right like numpy broadcasting.
    var ellipsisRank = 0
    for (term, t) in zip(equation.inputs, tensors) {
        let letters = term.filter { $0 != nil }.count
        if term.contains(where: { $0 == nil }) {
            guard t.rank >= letters else { throw KerfError.shapeMismatch("Einsum operand of shape \(t.shape) is too small for '\(text)'") }
            ellipsisRank = Swift.max(ellipsisRank, t.rank - letters)
        } else {
            guard t.rank == letters else {
                throw KerfError.shapeMismatch("Einsum operand of rank \(t.rank) does not match its term in '\(text)'")
            }
        }
    }
    func labelsOf(_ term: Term, rank: Int) -> [Int] {
        var labels: [Int] = []
        let letters = term.filter { $0 != nil }.count
        for c in term {
            if let c { labels.append(labelID(c)) } else {
                let n = rank - letters
                labels.append(contentsOf: (0..<n).map { 256 + ellipsisRank - n + $0 })
            }
        }
        return labels
    }
    var operands = zip(equation.inputs, tensors).map { Operand(tensor: $1, labels: labelsOf($0, rank: $1.rank)) }
    // Label sizes; size-1 dims broadcast.
    var sizes: [Int: Int] = [:]
    for op in operands {
        for (l, d) in zip(op.labels, op.tensor.shape) {
            if let s = sizes[l], s != d {
                guard s == 1 || d == 1 else { throw KerfError.shapeMismatch("Einsum label sizes \(s) and \(d) do not match in '\(text)'") }
                sizes[l] = Swift.max(s, d)
            } else if sizes[l] == nil {
                sizes[l] = d
            }
        }
    }
    let outputLabels: [Int]
    if let out = equation.output {
        var labels: [Int] = []
        for c in out {
            if let c { labels.append(labelID(c)) } else { labels.append(contentsOf: (0..<ellipsisRank).map { 256 + $0 }) }
        }
        guard Set(labels).count == labels.count else { throw KerfError.invalidModel("Einsum output of '\(text)' repeats a label") }
        for l in labels where sizes[l] == nil { throw KerfError.invalidModel("Einsum output label of '\(text)' appears in no input") }
        outputLabels = labels
    } else {
        var counts: [Int: Int] = [:]
        for op in operands { for l in op.labels where l < 256 { counts[l, default: 0] += 1 } }
        outputLabels = (0..<ellipsisRank).map { 256 + $0 } + counts.filter { $0.value == 1 }.keys.sorted()
    }
    try checkedElementCount(outputLabels.map { sizes[$0]! }, dtype: dtype, "Einsum")
    if dtype == .float16 || dtype == .bfloat16 {
        let floats = try tensors.map { try $0.convertedToFloat32() }
        return try einsum(equation, floats, text: text).convertedFromFloat32(to: dtype)
    }
    // Diagonals, then broadcast size-1 dims to their label's size.
    for i in operands.indices {
        operands[i] = try diagonals(operands[i])
        let target = operands[i].labels.map { sizes[$0]! }
        if target != operands[i].tensor.shape {
            operands[i].tensor = try expand(operands[i].tensor, to: target)
        }
    }
    let outputSet = Set(outputLabels)
    func needed(after index: Int) -> Set<Int> {
        var s = outputSet
        for op in operands[(index + 1)...] { s.formUnion(op.labels) }
        return s
    }
    var acc = try sumOut(operands[0], keep: needed(after: 0))
    for i in 1..<operands.count {
        let keep = needed(after: i)
        let b = try sumOut(operands[i], keep: keep.union(acc.labels))
        let a = try sumOut(acc, keep: keep.union(b.labels))
        let inB = Set(b.labels), inA = Set(a.labels)
        let batch = a.labels.filter { inB.contains($0) && keep.contains($0) }
        let contracted = a.labels.filter { inB.contains($0) && !keep.contains($0) }
        let mLabels = a.labels.filter { !inB.contains($0) }
        let nLabels = b.labels.filter { !inA.contains($0) }
        let size = { (ls: [Int]) in ls.map { sizes[$0]! }.reduce(1, *) }
        let bt = size(batch), m = size(mLabels), k = size(contracted), n = size(nLabels)
        try checkedElementCount([bt, m, n], dtype: dtype, "Einsum")
        let left = try arrange(a, batch + mLabels + contracted).reshaped([bt, m, k])
        let right = try arrange(b, batch + contracted + nLabels).reshaped([bt, k, n])
        let product = try matmul(left, right)
        let labels = batch + mLabels + nLabels
        acc = Operand(tensor: product.reshaped(labels.map { sizes[$0]! }), labels: labels)
    }
    acc = try sumOut(acc, keep: outputSet)
    return try arrange(acc, outputLabels)
}

enum EinsumOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Einsum"] = { c in
            guard let text = try c.string("equation") else { throw KerfError.invalidModel("Einsum needs an equation attribute") }
            let equation = try parseEquation(text)
            return ClosureOperator { inputs in
                [try einsum(equation, inputs.compactMap { $0 }, text: text)]
            }
        }
    }
}
