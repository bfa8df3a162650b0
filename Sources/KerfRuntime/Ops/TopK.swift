import KerfCore

// TopK: k as an attribute (opset 1) or input (10+); `largest` and `sorted` from 11. Values
// come out sorted (also when sorted=0, which leaves the order free); equal values keep the
// lower index first. NaN counts as larger than every number.

private struct TopKBody: NumericBody {
    let x: Tensor, axis: Int, k: Int, largest: Bool
    func run<T: NumericElement>(_: T.Type) throws -> [Tensor] {
        let n = x.shape[axis]
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
        var outShape = x.shape
        outShape[axis] = k
        var values = try Tensor(uninitialized: x.dtype, shape: outShape)
        var indices = try Tensor(uninitialized: .int64, shape: outShape)
        if outer * inner * k == 0 { return [values, indices] }
        let isFloat = T.isFloatingPoint
        x.withElements(as: T.self) { src in
            values.withMutableElements(as: T.self) { vOut in
                indices.withMutableElements(as: Int64.self) { iOut in
                    var order = [Int](repeating: 0, count: n)
                    var row = [T](repeating: T.zero, count: n)
                    for o in 0..<outer {
                        for i in 0..<inner {
                            let base = o * n * inner + i
                            for j in 0..<n { row[j] = src[base + j * inner]; order[j] = j }
                            row.withUnsafeBufferPointer { v in
                                // a comes before b in the output order.
                                func before(_ a: Int, _ b: Int) -> Bool {
                                    let va = v[a], vb = v[b]
                                    let aNaN = isFloat && va != va, bNaN = isFloat && vb != vb
                                    if aNaN || bNaN {
                                        if aNaN && bNaN { return a < b }
                                        return largest ? aNaN : bNaN
                                    }
                                    if va == vb { return a < b }
                                    return largest ? va > vb : va < vb
                                }
                                if k < n / 8 {
                                    // Selection of k by partial insertion keeps small k cheap.
                                    var best: [Int] = []
                                    best.reserveCapacity(k + 1)
                                    for j in 0..<n {
                                        if best.count == k, let last = best.last, !before(j, last) { continue }
                                        var p = best.count
                                        while p > 0 && before(j, best[p - 1]) { p -= 1 }
                                        best.insert(j, at: p)
                                        if best.count > k { best.removeLast() }
                                    }
                                    for t in 0..<k { order[t] = best[t] }
                                } else {
                                    order.sort(by: before)
                                }
                            }
                            let outBase = o * k * inner + i
                            for t in 0..<k {
                                vOut[outBase + t * inner] = row[order[t]]
                                iOut[outBase + t * inner] = Int64(order[t])
                            }
                        }
                    }
                }
            }
        }
        return [values, indices]
    }
}

func topK(_ x: Tensor, k: Int, axis rawAxis: Int, largest: Bool) throws -> [Tensor] {
    guard x.rank > 0 else { throw KerfError.invalidArgument("TopK needs an input of rank >= 1") }
    let axis = try normalizeAxis(rawAxis, rank: x.rank, what: "TopK axis")
    guard k >= 0, k <= x.shape[axis] else {
        throw KerfError.invalidArgument("TopK k = \(k) is out of range for an axis of size \(x.shape[axis])")
    }
    if x.dtype == .float16 || x.dtype == .bfloat16 {
        let r = try topK(x.convertedToFloat32(), k: k, axis: rawAxis, largest: largest)
        return [try r[0].convertedFromFloat32(to: x.dtype), r[1]]
    }
    return try dispatchNumeric(x.dtype, TopKBody(x: x, axis: axis, k: k, largest: largest))
}

enum TopKOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["TopK"] = { c in
            let axis = try c.int("axis", default: -1)
            let largest = try c.int("largest", default: 1) != 0
            let attrK = c.opset < 10 ? try c.int("k") : nil
            if c.opset < 10 && attrK == nil { throw KerfError.invalidModel("TopK-\(c.opset) needs a k attribute") }
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                var k: Int
                if let attrK {
                    k = attrK
                } else {
                    let ks = try intValues(try inputs.required(1, "K"), "TopK K")
                    guard ks.count == 1 else { throw KerfError.invalidArgument("TopK K must hold one value, got \(ks.count)") }
                    k = ks[0]
                }
                return try topK(x, k: k, axis: axis, largest: largest)
            }
        }
    }
}
