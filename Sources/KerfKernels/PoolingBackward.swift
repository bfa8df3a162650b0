// The backward passes of max and average pooling over one image plane (float and double),
// and average pooling forward in double. Geometry and padding as the forward kernels in
// Pooling.swift; callers validate shapes.

/// dx[inputSize...] += dy[o] at the position of the maximum of each window o of x (the first
/// maximum in row-major tap order, skipping padding, as `maxPoolPlane` and PyTorch choose).
/// Windows entirely in padding pass nothing back. dx must be zeroed by the caller.
public func maxPoolBackwardPlane(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                                 geometry g: WindowGeometry) {
    maxPoolBackward(x, dy, dx, g)
}

public func maxPoolBackwardPlane(_ x: UnsafePointer<Double>, _ dy: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>,
                                 geometry g: WindowGeometry) {
    maxPoolBackward(x, dy, dx, g)
}

/// dx[inputSize...] += dy[o] / count(o) over the taps of each window o that lie inside the
/// input, count as the forward's divisor (`averagePoolPlane`: taps inside the input, or with
/// `countIncludePad` inside the input plus explicit pads). dx must be zeroed by the caller.
public func averagePoolBackwardPlane(_ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, geometry g: WindowGeometry,
                                     padsEnd: [Int], countIncludePad: Bool) {
    averagePool(dy, dx, g, padsEnd: padsEnd, countIncludePad: countIncludePad, backward: true)
}

public func averagePoolBackwardPlane(_ dy: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>, geometry g: WindowGeometry,
                                     padsEnd: [Int], countIncludePad: Bool) {
    averagePool(dy, dx, g, padsEnd: padsEnd, countIncludePad: countIncludePad, backward: true)
}

/// Average pooling of one double plane x into y (the contract of `averagePoolPlane`).
public func averagePoolPlane(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, geometry g: WindowGeometry,
                             padsEnd: [Int], countIncludePad: Bool) {
    averagePool(x, y, g, padsEnd: padsEnd, countIncludePad: countIncludePad, backward: false)
}

/// The input positions along one spatial dim of the window of output position `o`: the first
/// tap's position, and the taps' range [lo, hi) whose positions lie in [lower, upper).
@inline(__always)
private func taps(_ o: Int, _ d: Int, _ g: WindowGeometry, lower: Int, upper: Int) -> (start: Int, lo: Int, hi: Int) {
    let start = o * g.strides[d] - g.padsBegin[d], dil = g.dilations[d], k = g.kernel[d]
    // Taps t with lower <= start + t·dil < upper.
    let lo = start >= lower ? 0 : min(k, (lower - start + dil - 1) / dil)
    let hi = upper <= start ? 0 : min(k, (upper - start + dil - 1) / dil)
    return (start, lo, max(lo, hi))
}

@inline(__always)
private func maxPoolBackward<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>,
                                                     _ g: WindowGeometry) {
    if g.inputSize.count == 2 {
        let rows = WindowRanges(g, 0), columns = WindowRanges(g, 1)
        maxPoolBackward2D(x, dy, dx, width: g.inputSize[1], rows: rows, columns: columns)
        return
    }
    var current = -1, best = -1
    var bestValue: T = 0
    g.forEachTap { o, _, i in
        if o != current {
            if best >= 0 { dx[best] += dy[current] }
            current = o
            best = -1
        }
        if i >= 0, best < 0 || x[i] > bestValue { best = i; bestValue = x[i] }
    }
    if best >= 0 { dx[best] += dy[current] }
}

/// Per output position along one spatial dim: the first tap's input position and the range
/// of taps inside the input (as `taps`), with the dilation.
private struct WindowRanges {
    var start: [Int] = [], lo: [Int] = [], hi: [Int] = []
    let dilation: Int

    init(_ g: WindowGeometry, _ d: Int) {
        dilation = g.dilations[d]
        for o in 0..<g.outputSize[d] {
            let r = taps(o, d, g, lower: 0, upper: g.inputSize[d])
            start.append(r.start)
            lo.append(r.lo)
            hi.append(r.hi)
        }
    }
}

@inline(__always)
private func maxPoolBackward2D<T: BinaryFloatingPoint>(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>,
                                                       width w: Int, rows: WindowRanges, columns: WindowRanges) {
    let ow = columns.start.count, dh = rows.dilation, dw = columns.dilation
    rows.start.withUnsafeBufferPointer { rs in rows.lo.withUnsafeBufferPointer { rl in rows.hi.withUnsafeBufferPointer { rh in
    columns.start.withUnsafeBufferPointer { cs in columns.lo.withUnsafeBufferPointer { cl in columns.hi.withUnsafeBufferPointer { ch in
        for oy in 0..<rs.count {
            let top = rs[oy], kyLo = rl[oy], kyHi = rh[oy]
            let out = dy + oy * ow
            for ox in 0..<ow {
                let left = cs[ox], kxLo = cl[ox], kxHi = ch[ox]
                guard kyLo < kyHi, kxLo < kxHi else { continue }
                // Start from the first tap inside, then strictly greater values (branch-free):
                // the first maximum, as the forward.
                var best = (top + kyLo * dh) * w + left + kxLo * dw
                var bestValue = x[best]
                for ky in kyLo..<kyHi {
                    let row = (top + ky * dh) * w + left
                    for kx in kxLo..<kxHi {
                        let i = row + kx * dw
                        let v = x[i]
                        let better = v > bestValue
                        best = better ? i : best
                        bestValue = better ? v : bestValue
                    }
                }
                dx[best] += out[ox]
            }
        }
    } } } } } }
}

/// Forward (y[o] = mean of the window's taps) or backward (dx[taps] += dy[o] / count).
private func averagePool<T: BinaryFloatingPoint>(_ a: UnsafePointer<T>, _ b: UnsafeMutablePointer<T>, _ g: WindowGeometry,
                                                 padsEnd: [Int], countIncludePad: Bool, backward: Bool) {
    let rank = g.inputSize.count
    if rank == 2 && backward {
        averagePoolBackward2D(a, b, g, padsEnd: padsEnd, countIncludePad: countIncludePad)
        return
    }
    var outPos = [Int](repeating: 0, count: rank)
    var ranges = [(start: Int, lo: Int, hi: Int)](repeating: (0, 0, 0), count: rank)
    var tap = [Int](repeating: 0, count: rank)
    for o in 0..<g.outputCount {
        var rem = o
        for d in stride(from: rank - 1, through: 0, by: -1) { outPos[d] = rem % g.outputSize[d]; rem /= g.outputSize[d] }
        var count = 1, inside = 1
        for d in 0..<rank {
            ranges[d] = taps(outPos[d], d, g, lower: 0, upper: g.inputSize[d])
            inside *= ranges[d].hi - ranges[d].lo
            if countIncludePad {
                let padded = taps(outPos[d], d, g, lower: -g.padsBegin[d], upper: g.inputSize[d] + padsEnd[d])
                count *= padded.hi - padded.lo
            }
        }
        if !countIncludePad { count = inside }
        if backward {
            if inside == 0 || count == 0 { continue }
            let share = a[o] / T(count)
            forEachInside(ranges, g, &tap) { b[$0] += share }
        } else {
            var sum: T = 0
            if inside > 0 { forEachInside(ranges, g, &tap) { sum += a[$0] } }
            b[o] = count > 0 && inside > 0 ? sum / T(count) : 0
        }
    }
}

/// Calls body(flat input index) for every tap of the window whose per-dim tap ranges are
/// `ranges` (all non-empty), in row-major order.
@inline(__always)
private func forEachInside(_ ranges: [(start: Int, lo: Int, hi: Int)], _ g: WindowGeometry, _ tap: inout [Int], _ body: (Int) -> Void) {
    let rank = ranges.count
    for d in 0..<rank { tap[d] = ranges[d].lo }
    while true {
        var index = 0
        for d in 0..<rank { index = index * g.inputSize[d] + ranges[d].start + tap[d] * g.dilations[d] }
        body(index)
        var d = rank - 1
        while d >= 0 {
            tap[d] += 1
            if tap[d] < ranges[d].hi { break }
            tap[d] = ranges[d].lo
            d -= 1
        }
        if d < 0 { return }
    }
}

/// `averagePool` backward over a 2-D plane: the divisor of each output is the product of its
/// row and column tap counts (inside the input, or inside input and pads).
@inline(__always)
private func averagePoolBackward2D<T: BinaryFloatingPoint>(_ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>, _ g: WindowGeometry,
                                                           padsEnd: [Int], countIncludePad: Bool) {
    let rows = WindowRanges(g, 0), columns = WindowRanges(g, 1)
    func counts(_ d: Int, _ r: WindowRanges) -> [Int] {
        guard countIncludePad else { return (0..<r.start.count).map { r.hi[$0] - r.lo[$0] } }
        return (0..<g.outputSize[d]).map { o in
            let t = taps(o, d, g, lower: -g.padsBegin[d], upper: g.inputSize[d] + padsEnd[d])
            return t.hi - t.lo
        }
    }
    let rowCounts = counts(0, rows), columnCounts = counts(1, columns)
    let w = g.inputSize[1], ow = columns.start.count, dh = rows.dilation, dw = columns.dilation
    for oy in 0..<rows.start.count {
        let top = rows.start[oy], kyLo = rows.lo[oy], kyHi = rows.hi[oy]
        guard kyLo < kyHi, rowCounts[oy] > 0 else { continue }
        let out = dy + oy * ow
        for ox in 0..<ow {
            let left = columns.start[ox], kxLo = columns.lo[ox], kxHi = columns.hi[ox]
            guard kxLo < kxHi, columnCounts[ox] > 0 else { continue }
            let share = out[ox] / T(rowCounts[oy] * columnCounts[ox])
            for ky in kyLo..<kyHi {
                let row = dx + (top + ky * dh) * w + left
                for kx in kxLo..<kxHi { row[kx * dw] += share }
            }
        }
    }
}
