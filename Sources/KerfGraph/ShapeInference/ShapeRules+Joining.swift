import KerfCore

/// Operators that join, cut, pad or repeat tensors: Concat, Split, Slice, Pad, Tile, Expand.
extension ShapeRules {
    static let joining: [String: ShapeRule] = [
        "Concat": concat,
        "Split": split,
        "Slice": slice,
        "Pad": pad,
        "Tile": tile,
        "Expand": expand,
    ]

    /// Concat along `axis`: the axis dims add, the others must agree.
    static func concat(_ c: inout ShapeRuleContext) {
        let present = (0..<c.inputCount).filter { c.has($0) }
        let dtype = present.map { c.dtype($0) }.compactMap { $0 }.first
        c.set(0, dtype: dtype, shape: nil)
        guard let a = c.int("axis") else { return }
        let shapes = present.map { c.shape($0) }
        guard let rank = shapes.lazy.compactMap({ $0?.count }).first, let axis = c.axis(a, rank: rank) else { return }
        var out: [Dim] = Array(repeating: .unknown, count: rank)
        var total: Dim = .value(0)
        for s in shapes {
            guard let s else {
                total = .unknown
                continue
            }
            guard s.count == rank else {
                c.fail("inputs of ranks \(rank) and \(s.count)")
                return
            }
            for i in 0..<rank where i != axis {
                guard let m = Dim.merge(out[i], s[i]) else {
                    c.fail("dim \(i) differs: \(out[i]) and \(s[i])")
                    return
                }
                out[i] = m
            }
            total = Dim.sum(total, s[axis])
        }
        out[axis] = total
        c.set(0, dtype: dtype, shape: out)
        if axis == 0 {
            let values = present.map { c.value($0) }
            if values.allSatisfy({ $0 != nil }), let dims = Optional(out.compactMap(\.intValue)), dims.count == rank {
                c.setValue(0, KnownValue(shape: dims, elements: values.flatMap { $0!.elements }))
            }
        }
    }

    /// Split along `axis` into the sizes of input 1 / attribute `split`, else equal parts
    /// (`num_outputs` from opset 18: the last part may be smaller).
    static func split(_ c: inout ShapeRuleContext) {
        let n = c.node.outputs.count
        for i in 0..<n { c.set(i, dtype: c.dtype(0), shape: nil) }
        guard let xs = c.shape(0), let axis = c.axis(c.int("axis", default: 0), rank: xs.count) else { return }
        var sizes: [Dim]
        if c.has(1) {
            guard let v = c.integers(1) else {
                for i in 0..<n { c.set(i, dtype: c.dtype(0), shape: with(xs, axis, .unknown)) }
                return
            }
            sizes = v.map(Dim.value)
        } else if let a = c.ints("split") {
            sizes = a.map(Dim.value)
        } else if let d = xs[axis].intValue, n > 0 {
            let part = c.int("num_outputs") != nil ? (d / n + (d % n == 0 ? 0 : 1)) : d / n
            if c.int("num_outputs") == nil, d % n != 0 {
                c.fail("\(d) does not split into \(n) equal parts")
                return
            }
            sizes = (0..<n).map { i in .value(max(0, min(part, d - i * part))) }
        } else {
            sizes = Array(repeating: .unknown, count: n)
        }
        guard sizes.count == n, sizes.allSatisfy({ ($0.intValue ?? 0) >= 0 }) else {
            c.fail("split sizes \(sizes) for \(n) outputs")
            return
        }
        let known = sizes.compactMap(\.intValue)
        if let d = xs[axis].intValue, known.count == n, known.reduce(0, { $0 &+ $1 }) != d {
            c.fail("split sizes \(known) do not add up to \(d)")
            return
        }
        var offset = 0
        for (i, s) in sizes.enumerated() {
            c.set(i, dtype: c.dtype(0), shape: with(xs, axis, s))
            if let v = c.value(0), v.shape.count == 1, let k = s.intValue, offset >= 0, k <= v.elements.count - offset {
                c.setValue(i, KnownValue(vector: Array(v.elements[offset..<(offset + k)])))
                offset += k
            } else {
                offset = -1
            }
        }
    }

    /// `shape` with dim `axis` replaced.
    static func with(_ shape: [Dim], _ axis: Int, _ d: Dim) -> [Dim] {
        var s = shape
        s[axis] = d
        return s
    }

    /// Slice: starts/ends/axes/steps from inputs 1-4 (opset 10) or attributes; indices clamp as
    /// ONNX specifies. A symbolic dim survives only an untouched full-range slice.
    static func slice(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0) else { return }
        let fromInputs = c.inputCount > 1
        let starts = fromInputs ? c.integers(1) : c.ints("starts")
        let ends = fromInputs ? c.integers(2) : c.ints("ends")
        let listedAxes = fromInputs ? (c.has(3) ? c.integers(3) : Array(0..<(starts?.count ?? 0))) : (c.ints("axes") ?? Array(0..<(starts?.count ?? 0)))
        let steps = fromInputs && c.has(4) ? c.integers(4) : starts.map { Array(repeating: 1, count: $0.count) }
        guard let starts, let ends, let listedAxes, let steps else {
            // Unknown bounds: the sliced axes' sizes are unknown, the rank is not.
            var out = xs
            if let a = fromInputs && c.has(3) ? c.integers(3) : c.ints("axes"), let axes = c.axes(a, rank: xs.count) {
                for i in axes { out[i] = .unknown }
            } else {
                out = Array(repeating: .unknown, count: xs.count)
            }
            c.set(0, dtype: c.dtype(0), shape: out)
            return
        }
        guard starts.count == ends.count, starts.count == listedAxes.count, starts.count == steps.count,
              let axes = c.axes(listedAxes, rank: xs.count) else {
            c.fail("starts \(starts), ends \(ends), axes \(listedAxes), steps \(steps) do not match")
            return
        }
        var out = xs
        var ranges: [(start: Int, step: Int, count: Int)] = []
        for (k, axis) in axes.enumerated() {
            let step = steps[k]
            guard step != 0, step != Int.min else {
                c.fail("step \(step)")
                return
            }
            guard let d = xs[axis].intValue else {
                if starts[k] == 0, step == 1, ends[k] >= Int(Int32.max) { continue }
                out[axis] = .unknown
                continue
            }
            let (s, e) = step > 0
                ? (clamp(starts[k], d, 0, d), clamp(ends[k], d, 0, d))
                : (clamp(starts[k], d, 0, d - 1), clamp(ends[k], d, -1, d - 1))
            let count = step > 0 ? (e > s ? (e - s - 1) / step + 1 : 0) : (s > e ? (s - e - 1) / (-step) + 1 : 0)
            out[axis] = .value(count)
            if axis == 0 { ranges.append((s, step, count)) }
        }
        c.set(0, dtype: c.dtype(0), shape: out)
        if let v = c.value(0), v.shape.count == 1, axes.allSatisfy({ $0 == 0 }), let r = ranges.last, axes.count == 1 {
            let picked = (0..<r.count).map { r.start + $0 * r.step }
            if picked.allSatisfy({ $0 >= 0 && $0 < v.elements.count }) {
                c.setValue(0, KnownValue(vector: picked.map { v.elements[$0] }))
            }
        }
    }

    /// An index as Slice reads it: negative counts from `dim`, then clamped to `lo...hi`.
    static func clamp(_ v: Int, _ dim: Int, _ lo: Int, _ hi: Int) -> Int {
        let a = v < 0 ? v + dim : v
        return min(max(a, lo), hi)
    }

    /// Pad: each dim grows by its begin and end pads (input 1 from opset 11, axes input 3 from 18).
    static func pad(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0) else { return }
        let pads: [Int]
        if c.has(1) {
            guard let v = c.integers(1) else {
                c.set(0, dtype: c.dtype(0), shape: Array(repeating: .unknown, count: xs.count))
                return
            }
            pads = v
        } else if let a = c.ints("pads") ?? c.ints("paddings") {
            pads = a
        } else {
            c.set(0, c.fact(0))
            return
        }
        let axes: [Int]
        if c.has(3) {
            guard let a = c.integers(3), let n = c.axes(a, rank: xs.count) else { return }
            axes = n
        } else {
            axes = Array(0..<xs.count)
        }
        guard pads.count == 2 * axes.count else {
            c.fail("\(pads.count) pads for \(axes.count) axes")
            return
        }
        var out = xs
        for (k, axis) in axes.enumerated() {
            let begin = pads[k], end = pads[k + axes.count]
            if begin == 0 && end == 0 { continue }
            guard let d = xs[axis].intValue else {
                out[axis] = .unknown
                continue
            }
            let (a, o1) = d.addingReportingOverflow(begin)
            let (b, o2) = a.addingReportingOverflow(end)
            guard !o1, !o2, b >= 0 else {
                c.fail("pads \(begin), \(end) on a dim of \(d)")
                return
            }
            out[axis] = .value(b)
        }
        c.set(0, dtype: c.dtype(0), shape: out)
    }

    /// Tile: each dim times its repeat count (input 1).
    static func tile(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0) else { return }
        guard let v = c.value(1) else {
            c.set(0, dtype: c.dtype(0), shape: Array(repeating: .unknown, count: xs.count))
            return
        }
        guard v.elements.count == xs.count else {
            c.fail("\(v.elements.count) repeats for \(xs.count) dims")
            return
        }
        if v.elements.contains(where: { if case .value(let r) = $0 { return r < 0 } else { return false } }) {
            c.fail("negative repeats \(v.elements)")
            return
        }
        c.set(0, dtype: c.dtype(0), shape: zip(xs, v.elements).map { Dim.product($0, $1) })
    }

    /// Expand: the input broadcast with the shape tensor (input 1).
    static func expand(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0) else { return }
        guard let v = c.value(1) else {
            if let s = c.shape(1), s.count == 1, let n = s[0].intValue, n < 1 << 16 {
                c.set(0, dtype: c.dtype(0), shape: Array(repeating: .unknown, count: max(n, xs.count)))
            }
            return
        }
        guard v.shape.count == 1 else {
            c.fail("shape input of rank \(v.shape.count)")
            return
        }
        guard let out = Shapes.broadcast([xs, v.elements]) else {
            c.fail("\(xs) does not broadcast to \(v.elements)")
            return
        }
        c.set(0, dtype: c.dtype(0), shape: out)
        if let x = c.value(0), let dims = Optional(out.compactMap(\.intValue)), dims.count == out.count,
           let n = Shapes.count(out), n <= KnownValue.maxElements {
            c.setValue(0, KnownValue(shape: dims, elements: (0..<n).compactMap { element(x, at: $0, of: dims) }))
        }
    }
}
