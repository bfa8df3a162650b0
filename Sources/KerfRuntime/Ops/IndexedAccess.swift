import KerfCore

// Index handling shared by the indexing ops (Gather, GatherElements, GatherND and their
// Scatter inverses): indices are validated before any element is addressed, then the ops
// reduce to copying slices at element offsets.

/// The values of `indices` (int32 or int64) as [Int], negative ones counted from the end of an
/// axis of `size`; `.invalidArgument` naming `what` for a value outside [-size, size).
func resolvedIndices(_ indices: Tensor, axisSize size: Int, _ what: String) throws -> [Int] {
    var values = try intValues(indices, what)
    for i in values.indices {
        let v = values[i]
        let r = v < 0 ? v + size : v
        guard r >= 0, r < size else {
            throw KerfError.invalidArgument("\(what) \(v) is out of range for an axis of size \(size)")
        }
        values[i] = r
    }
    return values
}

/// The element offset, under `strides`, of every position of `shape` in row-major order.
func stridedOffsets(_ shape: [Int], strides: [Int]) -> [Int] {
    var offsets = [0]
    for d in shape.indices {  // each offset so far expands along dim d
        var next: [Int] = []
        next.reserveCapacity(offsets.count * shape[d])
        for base in offsets { for c in 0..<shape[d] { next.append(base + c * strides[d]) } }
        offsets = next
    }
    return offsets
}

/// A tensor of `shape` (offsets.count * slice elements) whose i-th run of `slice` elements is
/// data's elements offsets[i] ..< offsets[i] + slice. Offsets must be in bounds (validated).
func gatherSlices(_ data: Tensor, offsets: [Int], slice: Int, shape: [Int]) throws -> Tensor {
    if data.dtype == .string {
        return try movingStrings(data) { try gatherSlices($0, offsets: offsets, slice: slice, shape: shape) }
    }
    struct Copy: ByteElementBody {
        let data: Tensor, offsets: [Int], slice: Int, shape: [Int]
        func run<E>(_: E.Type) throws -> Tensor {
            var out = try Tensor(uninitialized: data.dtype, shape: shape)
            guard slice > 0, !offsets.isEmpty else { return out }
            data.withElements(as: E.self) { src in
                out.withMutableElements(as: E.self) { dst in
                    if slice == 1 {
                        for (i, o) in offsets.enumerated() { dst[i] = src[o] }
                    } else {
                        for (i, o) in offsets.enumerated() {
                            (dst.baseAddress! + i * slice).update(from: src.baseAddress! + o, count: slice)
                        }
                    }
                }
            }
            return out
        }
    }
    return try dispatchBytes(data.dtype, "gathering", Copy(data: data, offsets: offsets, slice: slice, shape: shape))
}
