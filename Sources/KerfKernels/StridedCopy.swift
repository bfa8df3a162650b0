/// Copies a strided view of `input` into the dense row-major `output`:
/// out[i0, i1, ...] = in[base + i0 * strides[0] + i1 * strides[1] + ...] (offsets in elements).
/// Strides may be zero or negative; the caller guarantees every addressed element is in bounds.
/// Elements are copied as bytes, so any element size works.
public func stridedCopy(_ input: UnsafeRawPointer, base: Int, strides: [Int], shape: [Int], elementSize: Int,
                        output: UnsafeMutableRawPointer) {
    let count = shape.reduce(1, *)
    if count == 0 || elementSize == 0 { return }
    let rank = shape.count
    if rank == 0 {
        output.copyMemory(from: input + base * elementSize, byteCount: elementSize)
        return
    }
    let inner = shape[rank - 1], innerStride = strides[rank - 1]
    let outer = count / inner
    var walk = Odometer(shape: Array(shape.dropLast()), strides: Array(strides.dropLast()), at: 0)
    var dst = output
    let rowBytes = inner * elementSize
    for _ in 0..<outer {
        let offset = base + walk.offset
        if innerStride == 1 {
            dst.copyMemory(from: input + offset * elementSize, byteCount: rowBytes)
        } else {
            switch elementSize {
            case 4:
                for j in 0..<inner {
                    dst.storeBytes(of: input.load(fromByteOffset: (offset + j * innerStride) * 4, as: UInt32.self),
                                   toByteOffset: j * 4, as: UInt32.self)
                }
            case 8:
                for j in 0..<inner {
                    dst.storeBytes(of: input.load(fromByteOffset: (offset + j * innerStride) * 8, as: UInt64.self),
                                   toByteOffset: j * 8, as: UInt64.self)
                }
            case 1:
                for j in 0..<inner {
                    dst.storeBytes(of: input.load(fromByteOffset: offset + j * innerStride, as: UInt8.self),
                                   toByteOffset: j, as: UInt8.self)
                }
            default:
                for j in 0..<inner {
                    (dst + j * elementSize).copyMemory(from: input + (offset + j * innerStride) * elementSize,
                                                       byteCount: elementSize)
                }
            }
        }
        dst += rowBytes
        walk.advance()
    }
}

/// Row-major element strides of `shape`.
public func denseStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[d] = s
        s *= shape[d]
    }
    return strides
}
