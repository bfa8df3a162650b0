import KerfCore
import KerfKernels

// GatherND (opset 11, 12 adds batch_dims, 13) and its inverse ScatterND (11, 13, 16, 18):
// the last dim k of `indices` holds index tuples into data's dims b ..< b + k (b = batch_dims,
// always 0 for ScatterND); each tuple selects the slice of data's trailing dims after them.

/// The element offset into `data` of the slice each index tuple selects, tuple by tuple in
/// row-major order, and the slice's element count. Checks 0 <= b < min(rank(indices),
/// rank(data)), 1 <= k <= rank(data) - b, equal batch dims, and every index value.
private func tupleOffsets(_ data: Tensor, _ indices: Tensor, batchDims b: Int, _ op: String) throws -> (offsets: [Int], slice: Int) {
    let r = data.rank, q = indices.rank
    guard r >= 1, q >= 1 else {
        throw KerfError.shapeMismatch("\(op): data \(data.shape) and indices \(indices.shape) need rank >= 1")
    }
    guard b >= 0, b < Swift.min(q, r) else {
        throw KerfError.invalidArgument("\(op): batch_dims \(b) must be in [0, \(Swift.min(q, r)))")
    }
    guard indices.shape[..<b] == data.shape[..<b] else {
        throw KerfError.shapeMismatch("\(op): the first \(b) dims of indices \(indices.shape) and data \(data.shape) differ")
    }
    let k = indices.shape[q - 1]
    guard k >= 1, k <= r - b else {
        throw KerfError.shapeMismatch("\(op): index tuples of length \(k) do not fit data \(data.shape) after \(b) batch dims")
    }
    let values = try intValues(indices, "\(op) indices")
    let strides = denseStrides(data.shape)
    let tuples = values.count / k
    let batchSize = data.shape[b...].reduce(1, *)
    let tuplesPerBatch = Swift.max(1, indices.shape[b..<(q - 1)].reduce(1, *))
    var offsets = [Int](repeating: 0, count: tuples)
    for t in 0..<tuples {
        var offset = (t / tuplesPerBatch) * batchSize
        for j in 0..<k {
            let size = data.shape[b + j], v = values[t * k + j]
            let resolved = v < 0 ? v + size : v
            guard resolved >= 0, resolved < size else {
                throw KerfError.invalidArgument("\(op) index \(v) is out of range for dim \(b + j) of data \(data.shape)")
            }
            offset += resolved * strides[b + j]
        }
        offsets[t] = offset
    }
    return (offsets, data.shape[(b + k)...].reduce(1, *))
}

/// GatherND: an output of shape indices.shape[..<q-1] + data.shape[b+k...] and data's dtype.
func gatherND(_ data: Tensor, _ indices: Tensor, batchDims: Int) throws -> Tensor {
    let (offsets, slice) = try tupleOffsets(data, indices, batchDims: batchDims, "GatherND")
    let k = indices.shape[indices.rank - 1]
    let shape = Array(indices.shape.dropLast()) + Array(data.shape[(batchDims + k)...])
    try checkedElementCount(shape, dtype: data.dtype, "GatherND")
    return try gatherSlices(data, offsets: offsets, slice: slice, shape: shape)
}

/// ScatterND: a copy of `data` with each slice of `updates` (shape indices.shape[..<q-1] +
/// data.shape[k...], data's dtype) stored or combined at the slice its tuple selects, in order.
func scatterND(_ data: Tensor, _ indices: Tensor, _ updates: Tensor, reduction: ScatterReduction) throws -> Tensor {
    let (offsets, slice) = try tupleOffsets(data, indices, batchDims: 0, "ScatterND")
    let k = indices.shape[indices.rank - 1]
    let expected = Array(indices.shape.dropLast()) + Array(data.shape[k...])
    guard updates.shape == expected else {
        throw KerfError.shapeMismatch("ScatterND: updates \(updates.shape) must have shape \(expected)")
    }
    return try scatterSlices(data, updates: updates, offsets: offsets, slice: slice, reduction: reduction, op: "ScatterND")
}

enum NDIndexingOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["GatherND"] = { c in
            let batchDims = try c.int("batch_dims", default: 0)
            return ClosureOperator { [try gatherND(try $0.required(0), try $0.required(1, "indices"), batchDims: batchDims)] }
        }
        r["ScatterND"] = { c in
            let reduction = try ScatterReduction(c)
            return ClosureOperator { inputs in
                [try scatterND(try inputs.required(0), try inputs.required(1, "indices"), try inputs.required(2, "updates"),
                               reduction: reduction)]
            }
        }
    }
}
