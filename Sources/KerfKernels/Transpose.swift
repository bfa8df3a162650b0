/// Permutes the axes of a dense row-major tensor: out has shape [shape[perm[0]], ...] and
/// out[i0, i1, ...] = in[...] with input axis perm[d] at output position d.
/// Works on any element size (bytes are copied).
public func transpose(_ input: UnsafeRawPointer, shape: [Int], perm: [Int], elementSize: Int,
                      output: UnsafeMutableRawPointer) {
    let rank = shape.count
    let count = shape.reduce(1, *)
    if count == 0 { return }
    var inStrides = [Int](repeating: 1, count: rank)
    for d in stride(from: rank - 2, through: 0, by: -1) { inStrides[d] = inStrides[d + 1] * shape[d + 1] }
    let outShape = perm.map { shape[$0] }
    let strides = perm.map { inStrides[$0] }  // input stride for each output axis
    var index = [Int](repeating: 0, count: rank)
    var offset = 0
    for i in 0..<count {
        switch elementSize {
        case 4: output.storeBytes(of: input.load(fromByteOffset: offset * 4, as: UInt32.self), toByteOffset: i * 4, as: UInt32.self)
        case 8: output.storeBytes(of: input.load(fromByteOffset: offset * 8, as: UInt64.self), toByteOffset: i * 8, as: UInt64.self)
        case 1: output.storeBytes(of: input.load(fromByteOffset: offset, as: UInt8.self), toByteOffset: i, as: UInt8.self)
        default: (output + i * elementSize).copyMemory(from: input + offset * elementSize, byteCount: elementSize)
        }
        var d = rank - 1
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
