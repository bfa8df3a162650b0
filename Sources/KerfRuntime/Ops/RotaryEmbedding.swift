import KerfCore
import KerfKernels

// RotaryEmbedding (opset 23): rotates the first rotary_embedding_dim elements of every head's
// rows by position-dependent angles. input is [batch, heads, sequence, head] or, with the
// num_heads attribute, [batch, sequence, heads·head]; the output has input's shape and dtype.
// With position_ids [batch, sequence] (int), cos_cache / sin_cache are [positions, rotary/2]
// and are indexed by it; without, they are [batch, sequence, rotary/2].

/// RotaryEmbedding of float32 tensors.
func rotaryEmbedding(_ x: Tensor, cos: Tensor, sin: Tensor, positionIDs: Tensor?, interleaved: Bool,
                     rotaryDim: Int, numHeads: Int) throws -> Tensor {
    guard x.dtype == .float, cos.dtype == .float, sin.dtype == .float else {
        throw KerfError.unsupported("RotaryEmbedding on \(x.dtype) with \(cos.dtype) caches is not supported (float, float16, bfloat16, all alike)")
    }
    let batch: Int, heads: Int, sequence: Int, d: Int
    switch x.rank {
    case 4: (batch, heads, sequence, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    case 3:
        guard numHeads > 0, x.shape[2] % numHeads == 0 else {
            throw KerfError.invalidModel("RotaryEmbedding of a 3-D input needs num_heads dividing its hidden size \(x.shape[2]), got \(numHeads)")
        }
        (batch, heads, sequence, d) = (x.shape[0], numHeads, x.shape[1], x.shape[2] / numHeads)
    default: throw KerfError.shapeMismatch("RotaryEmbedding needs a 3-D or 4-D input, got \(x.shape)")
    }
    let rotary = rotaryDim == 0 ? d : rotaryDim
    guard rotary > 0, rotary <= d, rotary % 2 == 0 else {
        throw KerfError.invalidModel("RotaryEmbedding: rotary_embedding_dim \(rotary) must be even and at most the head size \(d)")
    }
    let half = rotary / 2
    guard cos.shape == sin.shape, cos.shape.last == half else {
        throw KerfError.shapeMismatch("RotaryEmbedding: cos_cache \(cos.shape) and sin_cache \(sin.shape) must match and end in rotary_embedding_dim/2 = \(half)")
    }
    // The cache row of each (batch, position) pair, b * sequence + s.
    let rows: [Int]
    if let positionIDs {
        guard positionIDs.shape == [batch, sequence], cos.rank == 2 else {
            throw KerfError.shapeMismatch("RotaryEmbedding: position_ids \(positionIDs.shape) must be [\(batch), \(sequence)] and the caches 2-D, got \(cos.shape)")
        }
        rows = try intValues(positionIDs, "RotaryEmbedding position_ids")
        if let bad = rows.first(where: { !(0..<cos.shape[0]).contains($0) }) {
            throw KerfError.invalidArgument("RotaryEmbedding: position id \(bad) is outside the cache's \(cos.shape[0]) positions")
        }
    } else {
        guard cos.shape == [batch, sequence, half] else {
            throw KerfError.shapeMismatch("RotaryEmbedding without position_ids needs caches of shape [\(batch), \(sequence), \(half)], got \(cos.shape)")
        }
        rows = Array(0..<batch * sequence)
    }
    var y = try Tensor(uninitialized: .float, shape: x.shape)
    let xp = UnsafePointer(x.storage.pointer.assumingMemoryBound(to: Float.self))
    let cp = UnsafePointer(cos.storage.pointer.assumingMemoryBound(to: Float.self))
    let sp = UnsafePointer(sin.storage.pointer.assumingMemoryBound(to: Float.self))
    y.withMutableElements(as: Float.self) { yb in
        for b in 0..<batch {
            for h in 0..<heads {
                for s in 0..<sequence {
                    let offset = x.rank == 4 ? ((b * heads + h) * sequence + s) * d : ((b * sequence + s) * heads + h) * d
                    let row = rows[b * sequence + s] * half
                    rotaryEmbeddingRow(xp + offset, yb.baseAddress! + offset, d: d, half: half, cos: cp + row, sin: sp + row,
                                       interleaved: interleaved)
                }
            }
        }
    }
    return y
}

enum RotaryEmbeddingOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["RotaryEmbedding"] = { c in
            let interleaved = try c.int("interleaved", default: 0) != 0
            let rotaryDim = try c.int("rotary_embedding_dim", default: 0)
            let numHeads = try c.int("num_heads", default: 0)
            return ClosureOperator { inputs in
                try withFloat32(inputs) { f in
                    [try rotaryEmbedding(try f.required(0, "input"), cos: try f.required(1, "cos_cache"), sin: try f.required(2, "sin_cache"),
                                         positionIDs: f.optional(3), interleaved: interleaved, rotaryDim: rotaryDim, numHeads: numHeads)]
                }
            }
        }
    }
}
