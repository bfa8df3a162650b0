/// ONNX (numpy) multidirectional broadcasting of two shapes; nil when incompatible.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = max(a.count, b.count)
    var out = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        if x == y || y == 1 { out[i] = x } else if x == 1 { out[i] = y } else { return nil }
    }
    return out
}

/// Element strides of `shape` read as if broadcast to `outShape` (0 along broadcast dims).
@inlinable
public func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let offset = outShape.count - shape.count
    var strides = [Int](repeating: 0, count: outShape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i + offset] = shape[i] == 1 ? 0 : s
        s *= shape[i]
    }
    return strides
}

/// out[i] = op(a[ia], b[ib]) over `outShape`, where a and b broadcast to `outShape`.
/// Buffers hold `aShape.product`, `bShape.product` and `outShape.product` elements.
@inlinable
public func broadcastBinary<A, B, R>(_ a: UnsafePointer<A>, _ aShape: [Int], _ b: UnsafePointer<B>, _ bShape: [Int],
                                     _ out: UnsafeMutablePointer<R>, _ outShape: [Int], _ op: (A, B) -> R) {
    let n = outShape.reduce(1, *)
    if n == 0 { return }
    let na = aShape.reduce(1, *), nb = bShape.reduce(1, *)
    if na == n && nb == n {
        for i in 0..<n { out[i] = op(a[i], b[i]) }
        return
    }
    if nb == 1 && na == n {
        let y = b[0]
        for i in 0..<n { out[i] = op(a[i], y) }
        return
    }
    if na == 1 && nb == n {
        let x = a[0]
        for i in 0..<n { out[i] = op(x, b[i]) }
        return
    }
    let rank = outShape.count
    let sa = broadcastStrides(aShape, to: outShape), sb = broadcastStrides(bShape, to: outShape)
    let inner = outShape[rank - 1], ia = sa[rank - 1], ib = sb[rank - 1]
    let outer = n / inner
    var index = [Int](repeating: 0, count: rank)
    var offA = 0, offB = 0
    for o in 0..<outer {
        let dst = out + o * inner
        for j in 0..<inner { dst[j] = op(a[offA + j * ia], b[offB + j * ib]) }
        // Advance the multi-index over all but the innermost dim.
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            offA += sa[d]
            offB += sb[d]
            if index[d] < outShape[d] { break }
            offA -= sa[d] * outShape[d]
            offB -= sb[d] * outShape[d]
            index[d] = 0
            d -= 1
        }
    }
}

/// x[i] = op(x[i], b[ib]) (or op(b[ib], x[i]) when `!left`) over `shape`, where b broadcasts to
/// x's shape: `broadcastBinary` with the output written over the operand of the output's
/// shape. Its own loops, since with the output aliasing an input the compiler's vector loops
/// would fall back to scalar ones.
@inlinable
public func broadcastBinaryInPlace<T>(_ x: UnsafeMutablePointer<T>, _ shape: [Int], _ b: UnsafePointer<T>, _ bShape: [Int],
                                      left: Bool, _ op: (T, T) -> T) {
    let n = shape.reduce(1, *)
    if n == 0 { return }
    let nb = bShape.reduce(1, *)
    if nb == n {
        if left { for i in 0..<n { x[i] = op(x[i], b[i]) } } else { for i in 0..<n { x[i] = op(b[i], x[i]) } }
        return
    }
    if nb == 1 {
        let y = b[0]
        if left { for i in 0..<n { x[i] = op(x[i], y) } } else { for i in 0..<n { x[i] = op(y, x[i]) } }
        return
    }
    let rank = shape.count
    let sb = broadcastStrides(bShape, to: shape)
    let inner = shape[rank - 1], ib = sb[rank - 1]
    var walk = Odometer(shape: Array(shape.dropLast()), strides: Array(sb.dropLast()), at: 0)
    for o in 0..<(n / inner) {
        let row = x + o * inner, offB = walk.offset
        if ib == 0 {
            let y = b[offB]
            if left { for j in 0..<inner { row[j] = op(row[j], y) } } else { for j in 0..<inner { row[j] = op(y, row[j]) } }
        } else {
            let bRow = b + offB
            if left { for j in 0..<inner { row[j] = op(row[j], bRow[j]) } } else { for j in 0..<inner { row[j] = op(bRow[j], row[j]) } }
        }
        walk.advance()
    }
}

/// Gathers `a` broadcast to `outShape` into `out` (a materialized expand). `a` holds
/// `aShape.product` elements and `out` `outShape.product`, each `elementSize` bytes. Trailing
/// dims that `a` holds whole are copied as one block; trailing broadcast dims repeat one element.
public func broadcastCopy(_ a: UnsafeRawPointer, _ aShape: [Int], elementSize: Int,
                          _ out: UnsafeMutableRawPointer, _ outShape: [Int]) {
    let n = outShape.reduce(1, *)
    if n == 0 { return }
    let strides = broadcastStrides(aShape, to: outShape)
    var block = 1, outer = outShape.count
    while outer > 0, strides[outer - 1] == block || outShape[outer - 1] == 1 {
        block *= outShape[outer - 1]
        outer -= 1
    }
    if block > 1 || outer == 0 {
        let bytes = block * elementSize
        var walk = Odometer(shape: Array(outShape[..<outer]), strides: Array(strides[..<outer]), at: 0)
        for o in 0..<(n / block) {
            (out + o * bytes).copyMemory(from: a + walk.offset * elementSize, byteCount: bytes)
            walk.advance()
        }
        return
    }
    var run = 1
    while outer > 0, strides[outer - 1] == 0 {
        run *= outShape[outer - 1]
        outer -= 1
    }
    var walk = Odometer(shape: Array(outShape[..<outer]), strides: Array(strides[..<outer]), at: 0)
    for o in 0..<(n / run) {
        fillRepeating(out + o * run * elementSize, count: run, from: a + walk.offset * elementSize, elementSize: elementSize)
        walk.advance()
    }
}

/// Writes `count` copies of the `elementSize`-byte element at `source` to `out`.
@inline(__always)
func fillRepeating(_ out: UnsafeMutableRawPointer, count: Int, from source: UnsafeRawPointer, elementSize: Int) {
    switch elementSize {
    case 1: out.initializeMemory(as: UInt8.self, repeating: source.loadUnaligned(as: UInt8.self), count: count)
    case 2: out.initializeMemory(as: UInt16.self, repeating: source.loadUnaligned(as: UInt16.self), count: count)
    case 4: out.initializeMemory(as: UInt32.self, repeating: source.loadUnaligned(as: UInt32.self), count: count)
    case 8: out.initializeMemory(as: UInt64.self, repeating: source.loadUnaligned(as: UInt64.self), count: count)
    default:
        for i in 0..<count { (out + i * elementSize).copyMemory(from: source, byteCount: elementSize) }
    }
}
