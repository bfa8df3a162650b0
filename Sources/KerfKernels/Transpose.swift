/// Permutes the axes of a dense row-major tensor: out has shape [shape[perm[0]], ...] and
/// out[i0, i1, ...] = in[...] with input axis perm[d] at output position d.
/// Works on any element size (bytes are copied).
public func transpose(_ input: UnsafeRawPointer, shape: [Int], perm: [Int], elementSize: Int,
                      output: UnsafeMutableRawPointer, threads: Int = 1) {
    let rank = shape.count
    let count = shape.reduce(1, *)
    if count == 0 { return }
    // Trailing output axes that are the same trailing input axes, in order, are copied as
    // contiguous runs; the odometer walks the other axes. Runs are split over threads.
    var runAxes = 0
    while runAxes < rank && perm[rank - 1 - runAxes] == rank - 1 - runAxes { runAxes += 1 }
    let outer = rank - runAxes
    let run = shape[outer...].reduce(1, *)
    var inStrides = [Int](repeating: 1, count: rank)
    for d in stride(from: rank - 2, through: 0, by: -1) { inStrides[d] = inStrides[d + 1] * shape[d + 1] }
    let outShape = perm[..<outer].map { shape[$0] }
    let strides = perm[..<outer].map { inStrides[$0] }  // input stride (elements) of each walked output axis
    let runBytes = run * elementSize

    func copy<T>(_: T.Type, _ runs: Range<Int>) {
        let src = input.assumingMemoryBound(to: T.self), dst = output.assumingMemoryBound(to: T.self)
        // The odometer at the first run of the range.
        var index = [Int](repeating: 0, count: outer)
        var offset = 0, rest = runs.lowerBound
        for d in stride(from: outer - 1, through: 0, by: -1) {
            index[d] = rest % outShape[d]
            rest /= outShape[d]
            offset += index[d] * strides[d]
        }
        for i in runs {
            if run == 1 {
                dst[i] = src[offset]
            } else {
                (output + i * runBytes).copyMemory(from: input + offset * elementSize, byteCount: runBytes)
            }
            var d = outer - 1
            while d >= 0 {
                index[d] += 1
                offset += strides[d]
                if index[d] < outShape[d] { break }
                offset -= strides[d] * outShape[d]
                index[d] = 0
                d -= 1
            }
        }
    }
    parallelRanges(count / run, threads: threads, grain: max(1, 65536 / run)) { runs in
        switch elementSize {
        case 4: copy(UInt32.self, runs)
        case 8: copy(UInt64.self, runs)
        case 2: copy(UInt16.self, runs)
        case 1: copy(UInt8.self, runs)
        default:
            // Other sizes: every element is its own byte run.
            var index = [Int](repeating: 0, count: outer)
            var offset = 0, rest = runs.lowerBound
            for d in stride(from: outer - 1, through: 0, by: -1) {
                index[d] = rest % outShape[d]
                rest /= outShape[d]
                offset += index[d] * strides[d]
            }
            for i in runs {
                (output + i * runBytes).copyMemory(from: input + offset * elementSize, byteCount: runBytes)
                var d = outer - 1
                while d >= 0 {
                    index[d] += 1
                    offset += strides[d]
                    if index[d] < outShape[d] { break }
                    offset -= strides[d] * outShape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
    }
}
