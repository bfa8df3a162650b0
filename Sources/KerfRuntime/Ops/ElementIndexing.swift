import KerfCore
import KerfKernels

// GatherElements (opset 11, 13) and its inverse ScatterElements (11, 13, 16, 18; Scatter,
// opset 9 and 11, is ScatterElements without reduction): `indices` has data's rank, and each
// index element picks the element of `data` at its own position with the `axis` coordinate
// replaced by its value (negative values count from the end of the axis).

/// The offset into `data` of the element each element of `indices` addresses along `axis`.
/// Checks ranks (equal, >= 1), that indices' dims other than `axis` do not exceed data's,
/// and every index value.
private func elementOffsets(_ data: Tensor, _ indices: Tensor, axis rawAxis: Int, _ op: String) throws -> [Int] {
    guard data.rank >= 1, indices.rank == data.rank else {
        throw KerfError.shapeMismatch("\(op): indices \(indices.shape) and data \(data.shape) must have the same rank (>= 1)")
    }
    let axis = try normalizeAxis(rawAxis, rank: data.rank, what: "\(op) axis")
    for d in 0..<data.rank where d != axis && indices.shape[d] > data.shape[d] {
        throw KerfError.shapeMismatch("\(op): indices \(indices.shape) exceed data \(data.shape) in dim \(d)")
    }
    let resolved = try resolvedIndices(indices, axisSize: data.shape[axis], "\(op) index")
    var strides = denseStrides(data.shape)
    let axisStride = strides[axis]
    strides[axis] = 0
    var offsets = stridedOffsets(indices.shape, strides: strides)
    for i in offsets.indices { offsets[i] += resolved[i] * axisStride }
    return offsets
}

/// GatherElements: an output of indices' shape and data's dtype.
func gatherElements(_ data: Tensor, _ indices: Tensor, axis: Int) throws -> Tensor {
    let offsets = try elementOffsets(data, indices, axis: axis, "GatherElements")
    return try gatherSlices(data, offsets: offsets, slice: 1, shape: indices.shape)
}

/// ScatterElements: a copy of `data` with each element of `updates` (indices' shape, data's
/// dtype) stored or combined at the position its index addresses, in row-major order.
func scatterElements(_ data: Tensor, _ indices: Tensor, _ updates: Tensor, axis: Int,
                     reduction: ScatterReduction, op: String = "ScatterElements") throws -> Tensor {
    guard updates.shape == indices.shape else {
        throw KerfError.shapeMismatch("\(op): updates \(updates.shape) and indices \(indices.shape) differ in shape")
    }
    let offsets = try elementOffsets(data, indices, axis: axis, op)
    return try scatterSlices(data, updates: updates, offsets: offsets, slice: 1, reduction: reduction, op: op)
}

enum ElementIndexingOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["GatherElements"] = { c in
            let axis = try c.int("axis", default: 0)
            return ClosureOperator { [try gatherElements(try $0.required(0), try $0.required(1, "indices"), axis: axis)] }
        }
        for name in ["ScatterElements", "Scatter"] {
            r[name] = { c in
                let axis = try c.int("axis", default: 0)
                let reduction = try ScatterReduction(c)
                return ClosureOperator { inputs in
                    [try scatterElements(try inputs.required(0), try inputs.required(1, "indices"), try inputs.required(2, "updates"),
                                         axis: axis, reduction: reduction, op: name)]
                }
            }
        }
    }
}
