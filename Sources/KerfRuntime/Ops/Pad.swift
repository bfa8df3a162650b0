import FoundationEssentials
import KerfCore
import KerfKernels

// Pad: `paddings`/`pads`, `value` attributes before opset 11; pads and constant_value inputs
// from 11; `axes` input from 18; modes constant, reflect, edge and (opset 19) wrap.
// Negative pads crop first; the mode then pads the cropped tensor.

enum PadMode: String { case constant, reflect, edge, wrap }

/// Pads `x`. `pads` is [begin of each axis..., end of each axis...] for `axes` (all axes when
/// nil). `fill` is a one-element tensor of x's dtype for constant mode (zero when nil).
func pad(_ x: Tensor, pads: [Int], axes rawAxes: [Int]?, mode: PadMode, fill: Tensor?) throws -> Tensor {
    let rank = x.rank
    let axes = try (rawAxes ?? Array(0..<rank)).map { try normalizeAxis($0, rank: rank, what: "Pad axis") }
    guard Set(axes).count == axes.count else { throw KerfError.invalidArgument("Pad axes \(rawAxes ?? []) repeat") }
    guard pads.count == 2 * axes.count else {
        throw KerfError.invalidArgument("Pad has \(pads.count) pads for \(axes.count) axes (needs \(2 * axes.count))")
    }
    let limit = 1 << 40
    guard pads.allSatisfy({ $0 > -limit && $0 < limit }) else { throw KerfError.invalidArgument("Pad pads \(pads) are too large") }
    var begin = [Int](repeating: 0, count: rank), end = [Int](repeating: 0, count: rank)
    for (k, a) in axes.enumerated() {
        begin[a] = pads[k]
        end[a] = pads[axes.count + k]
    }
    // Output shape first (validated before anything is allocated), then per axis a map from
    // out index to input index, or -1 for the constant.
    var outShape: [Int] = []
    var crops: [(begin: Int, kept: Int, padBegin: Int)] = []
    for d in 0..<rank {
        let size = x.shape[d]
        let cropBegin = Swift.max(-begin[d], 0), cropEnd = Swift.max(-end[d], 0)
        let kept = size - cropBegin - cropEnd
        guard kept >= 0 else {
            throw KerfError.invalidArgument("Pad pads \(pads) crop more than axis \(d) of size \(size) holds")
        }
        let padBegin = Swift.max(begin[d], 0), padEnd = Swift.max(end[d], 0)
        let outSize = kept + padBegin + padEnd
        if mode != .constant && kept == 0 && outSize > 0 {
            throw KerfError.invalidArgument("Pad mode \(mode.rawValue) cannot pad an empty axis \(d)")
        }
        outShape.append(outSize)
        crops.append((cropBegin, kept, padBegin))
    }
    let total = try checkedElementCount(outShape, dtype: x.dtype, "Pad")
    var maps: [[Int]] = []
    for d in 0..<rank where total > 0 {
        let (cropBegin, kept, padBegin) = crops[d]
        let outSize = outShape[d]
        var map = [Int](repeating: -1, count: outSize)
        for o in 0..<outSize {
            let i = o - padBegin
            var j: Int
            if i >= 0 && i < kept {
                j = i
            } else {
                switch mode {
                case .constant: continue
                case .edge: j = i < 0 ? 0 : kept - 1
                case .wrap: j = ((i % kept) + kept) % kept
                case .reflect:
                    if kept == 1 {
                        j = 0
                    } else {
                        let period = 2 * (kept - 1)
                        j = ((i % period) + period) % period
                        if j >= kept { j = period - j }
                    }
                }
            }
            map[o] = j + cropBegin
        }
        maps.append(map)
    }
    if rank == 0 { return x }
    if x.dtype == .string {
        let fillString = fill?.strings.first ?? Data()
        return try movingStrings(x, fill: fillString) { idx in
            try pad(idx, pads: pads, axes: rawAxes, mode: mode, fill: Tensor(scalar: Int64(-1)))
        }
    }
    let size = x.dtype.byteSize
    let out = try Tensor(uninitialized: x.dtype, shape: outShape)
    let count = out.count
    if count == 0 { return out }
    // The fill value's bytes.
    var fillBytes = [UInt8](repeating: 0, count: size)
    if let fill {
        guard fill.dtype == x.dtype, fill.count >= 1 else {
            throw KerfError.shapeMismatch("Pad constant_value must be one \(x.dtype) value, got \(fill.dtype)\(fill.shape)")
        }
        for b in 0..<size { fillBytes[b] = fill.storage.pointer.load(fromByteOffset: b, as: UInt8.self) }
    }
    let inStrides = denseStrides(x.shape)
    let src = UnsafeRawPointer(x.storage.pointer)
    let inner = outShape[rank - 1], innerMap = maps[rank - 1]
    var index = [Int](repeating: 0, count: rank)
    var dst = out.storage.pointer
    for _ in 0..<(count / inner) {
        // Offset of the outer multi-index, or nil when an outer axis is in the constant border.
        var rowOffset: Int? = 0
        for d in 0..<(rank - 1) {
            let j = maps[d][index[d]]
            if j < 0 { rowOffset = nil; break }
            rowOffset! += j * inStrides[d]
        }
        for o in 0..<inner {
            let target = dst + o * size
            if let rowOffset, innerMap[o] >= 0 {
                target.copyMemory(from: src + (rowOffset + innerMap[o]) * size, byteCount: size)
            } else {
                fillBytes.withUnsafeBytes { target.copyMemory(from: $0.baseAddress!, byteCount: size) }
            }
        }
        dst += inner * size
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            if index[d] < outShape[d] { break }
            index[d] = 0
            d -= 1
        }
    }
    return out
}

enum PadOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Pad"] = { c in
            let modeName = try c.string("mode", default: "constant")
            guard let mode = PadMode(rawValue: modeName) else { throw KerfError.unsupported("Pad mode '\(modeName)' is not supported") }
            let opset = c.opset
            let attrPads = opset < 11 ? try c.ints(opset < 2 ? "paddings" : "pads") : nil
            let attrValue = try c.float("value", default: 0)
            if opset < 11 && attrPads == nil { throw KerfError.invalidModel("Pad-\(opset) needs a pads attribute") }
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                if let attrPads {
                    let fill = x.dtype == .string ? nil : try cast(Tensor(scalar: attrValue), to: x.dtype)
                    return [try pad(x, pads: attrPads, axes: nil, mode: mode, fill: fill)]
                }
                let pads = try intValues(try inputs.required(1, "pads"), "Pad pads")
                let fill = inputs.optional(2) ?? nil
                let axes = opset >= 18 ? try (inputs.optional(3) ?? nil).map { try intValues($0, "Pad axes") } : nil
                return [try pad(x, pads: pads, axes: axes, mode: mode, fill: fill?.count == 0 ? nil : fill)]
            }
        }
    }
}
