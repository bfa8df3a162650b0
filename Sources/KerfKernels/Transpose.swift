import KerfCKernels

/// Permutes the axes of a dense row-major tensor: out has shape [shape[perm[0]], ...] and
/// out[i0, i1, ...] = in[...] with input axis perm[d] at output position d.
/// Works on any element size (bytes are copied).
public func transpose(_ input: UnsafeRawPointer, shape fullShape: [Int], perm fullPerm: [Int], elementSize: Int,
                      output: UnsafeMutableRawPointer, threads: Int = 1) {
    let count = fullShape.reduce(1, *)
    if count == 0 { return }
    // Axes of size 1 move nothing: drop them (renumbering the rest).
    let kept = fullPerm.filter { fullShape[$0] != 1 }
    let shape = (0..<fullShape.count).filter { fullShape[$0] != 1 }.map { fullShape[$0] }
    let perm = kept.map { axis in fullPerm.filter { fullShape[$0] != 1 && $0 < axis }.count }
    let rank = shape.count
    if rank >= 2, perm[rank - 1] != rank - 1, elementSize == 4 || elementSize == 1 {
        transposeTiles(input, shape: shape, perm: perm, elementSize: elementSize, output, threads: threads)
        return
    }
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
        // The input offset of the first run of the range.
        var walk = Odometer(shape: outShape, strides: strides, at: runs.lowerBound)
        for i in runs {
            if run == 1 {
                dst[i] = src[walk.offset]
            } else {
                (output + i * runBytes).copyMemory(from: input + walk.offset * elementSize, byteCount: runBytes)
            }
            walk.advance()
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
            var walk = Odometer(shape: outShape, strides: strides, at: runs.lowerBound)
            for i in runs {
                (output + i * runBytes).copyMemory(from: input + walk.offset * elementSize, byteCount: runBytes)
                walk.advance()
            }
        }
    }
}

/// `transpose` of 4-byte or 1-byte elements when the innermost input axis moves: a batch of 2-D
/// transposes in tiles (floats 8x8, AVX2 when the CPU has it; bytes 16x16, SSE2). Input axis
/// p = perm[last] becomes the contiguous output axis and the contiguous input axis lands at
/// output position q; every combination of the other axes is one [shape[p], shape[last]] matrix.
private func transposeTiles(_ input: UnsafeRawPointer, shape: [Int], perm: [Int], elementSize: Int,
                            _ output: UnsafeMutableRawPointer, threads: Int) {
    let rank = shape.count, last = rank - 1
    var inStrides = [Int](repeating: 1, count: rank), outStrides = [Int](repeating: 1, count: rank)
    for d in stride(from: rank - 2, through: 0, by: -1) {
        inStrides[d] = inStrides[d + 1] * shape[d + 1]
        outStrides[d] = outStrides[d + 1] * shape[perm[d + 1]]
    }
    let p = perm[last], q = perm.firstIndex(of: last)!
    // The other output positions: their sizes and strides on both sides.
    let others = (0..<last).filter { $0 != q }
    let sizes = others.map { shape[perm[$0]] }, inSteps = others.map { inStrides[perm[$0]] }, outSteps = others.map { outStrides[$0] }
    let matrices = sizes.reduce(1, *)
    let rows = shape[p], columns = shape[last], lds = inStrides[p], ldd = outStrides[q]
    parallelRanges(matrices, threads: threads, grain: max(1, 65536 / max(1, rows * columns * elementSize / 4))) { range in
        for m in range {
            var rest = m, from = 0, to = 0
            for k in stride(from: others.count - 1, through: 0, by: -1) {
                let i = rest % sizes[k]
                rest /= sizes[k]
                from += i * inSteps[k]
                to += i * outSteps[k]
            }
            if elementSize == 4 {
                transpose(input.assumingMemoryBound(to: Float.self) + from, rows: rows, columns: columns, lds: lds, adding: nil,
                          output.assumingMemoryBound(to: Float.self) + to, ldd: ldd)
            } else {
                kerf_transpose_u8(input.assumingMemoryBound(to: UInt8.self) + from, rows, columns, lds,
                                  output.assumingMemoryBound(to: UInt8.self) + to, ldd)
            }
        }
    }
}
