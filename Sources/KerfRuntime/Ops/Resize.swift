import FoundationEssentials
import KerfCore
import KerfKernels

// Resize (opsets 10-19) and Upsample. Separable: each resized axis gets a table of
// (input index, weight) taps per output index, computed in Double following the ONNX reference
// (onnx/reference/ops/op_resize.py); the tables are applied one axis at a time in float32 or
// float64. tf_crop_and_resize outputs whose source lies outside the input on any axis take
// extrapolation_value.

enum ResizeMode: String { case nearest, linear, cubic }

struct ResizeAttributes {
    var mode: ResizeMode = .nearest
    var coordinateMode = "half_pixel"
    var nearestMode = "round_prefer_floor"
    var cubicA = -0.75
    var excludeOutside = false
    var extrapolationValue = 0.0
    var antialias = false
    var keepAspectRatioPolicy = "stretch"
}

/// Taps of one axis: `taps` (index, weight) pairs per output index; `outside[j]` marks
/// tf_crop_and_resize outputs that take the extrapolation value.
struct ResizeTable {
    var taps: Int
    var indices: [Int]
    var weights: [Double]
    var outside: [Bool]?

    var isIdentity: Bool {
        taps == 1 && outside == nil && indices.enumerated().allSatisfy { $0.offset == $0.element } && weights.allSatisfy { $0 == 1 }
    }
}

private func cubicKernel(_ x: Double, _ a: Double) -> Double {
    let x = Swift.abs(x)
    if x <= 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
    if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
    return 0
}

/// The source coordinate of output index `x` (nil: outside the tf_crop_and_resize box).
/// Computed in float32 with the formulas of the ONNX spec, as ONNX Runtime does: ties in
/// nearest rounding then fall the same way (x / 0.8 is exactly 5 for x = 4 in float32).
/// One exception: align_corners divides by `outputWidth - 1` where `outputWidth` is
/// scale * length_original when scales were given (fractional), as the ONNX reference and its
/// node tests do; ONNX Runtime uses the integer output length there.
private func sourceCoordinate(_ x: Int, inDim: Int, outDim: Int, outputWidth: Double, scale: Double,
                              roi: (Double, Double), mode: String) throws -> Double? {
    let xf = Float(x), s = Float(scale), inF = Float(inDim), outF = Float(outDim)
    let v: Float
    switch mode {
    case "half_pixel": v = (xf + 0.5) / s - 0.5
    case "pytorch_half_pixel": v = outDim > 1 ? (xf + 0.5) / s - 0.5 : 0
    case "align_corners":
        let width = Float(outputWidth)
        v = width == 1 ? 0 : xf * (inF - 1) / (width - 1)
    case "asymmetric": v = xf / s
    case "tf_half_pixel_for_nn": v = (xf + 0.5) / s
    case "half_pixel_symmetric":
        let adjustment = outF / (s * inF)
        let offset = inF / 2 * (1 - adjustment)
        v = offset + (xf + 0.5) / s - 0.5
    case "tf_crop_and_resize":
        let start = Float(roi.0), end = Float(roi.1)
        let c = outDim > 1 ? start * (inF - 1) + xf * (end - start) * (inF - 1) / (outF - 1) : 0.5 * (start + end) * (inF - 1)
        if c < 0 || c > inF - 1 { return nil }
        v = c
    default:
        throw KerfError.unsupported("Resize coordinate_transformation_mode '\(mode)' is not supported")
    }
    return Double(v)
}

/// `outputWidth`: scale * inDim when scales were given, else outDim.
func resizeTable(inDim: Int, outDim: Int, outputWidth: Double, scale: Double, roi: (Double, Double),
                 _ a: ResizeAttributes, opset10: Bool) throws -> ResizeTable {
    // Number of taps per output index.
    let footprintScale = a.antialias && scale < 1 ? scale : 1
    var taps: Int
    var firstOffset: Int  // offset of the first tap from floor(x) (the left neighbour)
    switch a.mode {
    case .nearest:
        taps = 1; firstOffset = 0
    case .linear:
        firstOffset = Int((-1 / footprintScale).rounded(.down)) + 1
        taps = 2 - 2 * firstOffset
    case .cubic:
        firstOffset = Int((-2 / footprintScale).rounded(.down)) + 1
        taps = 2 - 2 * firstOffset
    }
    guard taps >= 1, taps <= 1 << 16 else { throw KerfError.unsupported("Resize scale \(scale) needs too wide a filter") }
    let (entries, overflow) = taps.multipliedReportingOverflow(by: outDim)
    guard !overflow, entries <= maxComputedTensorBytes / 16 else { throw KerfError.outOfMemory("Resize output is too large") }
    var table = ResizeTable(taps: taps, indices: [Int](repeating: 0, count: entries),
                            weights: [Double](repeating: 0, count: entries), outside: nil)
    guard inDim > 0 else {
        if outDim == 0 { return table }
        throw KerfError.invalidArgument("Resize cannot fill \(outDim) outputs from an empty axis")
    }
    var coefficients = [Double](repeating: 0, count: taps)
    for j in 0..<outDim {
        guard let x = try sourceCoordinate(j, inDim: inDim, outDim: outDim, outputWidth: outputWidth, scale: scale,
                                                roi: roi, mode: a.coordinateMode) else {
            if table.outside == nil { table.outside = [Bool](repeating: false, count: outDim) }
            table.outside![j] = true
            table.weights[j * taps] = 0
            continue
        }
        guard x.isFinite, Swift.abs(x) < 1e15 else {
            throw KerfError.invalidArgument("Resize maps output \(j) to the invalid coordinate \(x)")
        }
        let floorX = x.rounded(.down)
        let isInteger = floorX == x
        // ratio in (0, 1]: an integer coordinate counts as the right end of [x - 1, x].
        let ratio = isInteger ? 1.0 : x - floorX
        let left = Int(x - ratio)
        if a.mode == .nearest {
            var pick: Int
            if opset10 {
                // Resize-10 / Upsample: ONNX Runtime truncates, or rounds up when downsampling.
                pick = scale < 1 ? Int(x.rounded(.up)) : Int(x.rounded(.towardZero))
            } else if isInteger {
                pick = Int(x)
            } else {
                switch a.nearestMode {
                case "round_prefer_floor": pick = ratio <= 0.5 ? left : left + 1
                case "round_prefer_ceil": pick = ratio < 0.5 ? left : left + 1
                case "floor": pick = left
                case "ceil": pick = left + 1
                default: throw KerfError.unsupported("Resize nearest_mode '\(a.nearestMode)' is not supported")
                }
            }
            table.indices[j] = Swift.min(Swift.max(pick, 0), inDim - 1)
            table.weights[j] = 1
            continue
        }
        switch a.mode {
        case .linear:
            if a.antialias {
                for t in 0..<taps {
                    let arg = (Double(firstOffset + t) - ratio) * footprintScale
                    coefficients[t] = Swift.min(Swift.max(1 - Swift.abs(arg), 0), 1)
                }
            } else {
                coefficients[0] = 1 - ratio
                coefficients[1] = ratio
            }
        case .cubic:
            if a.antialias {
                for t in 0..<taps { coefficients[t] = cubicKernel(footprintScale * (Double(firstOffset + t) - ratio), a.cubicA) }
            } else {
                let A = a.cubicA, r = ratio, q = 1 - ratio
                coefficients[0] = ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A
                coefficients[1] = ((A + 2) * r - (A + 3)) * r * r + 1
                coefficients[2] = ((A + 2) * q - (A + 3)) * q * q + 1
                coefficients[3] = ((A * (q + 1) - 5 * A) * (q + 1) + 8 * A) * (q + 1) - 4 * A
            }
        case .nearest:
            break
        }
        var sum = 0.0
        for t in 0..<taps {
            let index = left + firstOffset + t
            if a.excludeOutside && (index < 0 || index >= inDim) { coefficients[t] = 0 }
            sum += coefficients[t]
        }
        let normalize = a.antialias || a.excludeOutside
        for t in 0..<taps {
            let index = left + firstOffset + t
            table.indices[j * taps + t] = Swift.min(Swift.max(index, 0), inDim - 1)
            table.weights[j * taps + t] = normalize && sum != 0 ? coefficients[t] / sum : coefficients[t]
        }
    }
    return table
}

/// Reads a float tensor of any float dtype as [Double].
private func doubles(_ t: Tensor, _ what: String) throws -> [Double] {
    guard t.dtype.isFloatingPoint else { throw KerfError.shapeMismatch("Resize \(what) must be a float tensor, got \(t.dtype)") }
    return try cast(t, to: .double).array(of: Double.self)
}

private struct ApplyTables: NumericBody {
    let x: Tensor, tables: [ResizeTable?], outShape: [Int], extrapolation: Double
    func run<T: NumericElement>(_: T.Type) throws -> Tensor {
        if T.self == Float.self { return try apply(Float.self) }
        if T.self == Double.self { return try apply(Double.self) }
        // Integer data: interpolate in double and round back.
        let asDouble = try cast(x, to: .double)
        let result = try ApplyTables(x: asDouble, tables: tables, outShape: outShape, extrapolation: extrapolation).apply(Double.self)
        return result.withElements(as: Double.self) { Tensor(shape: outShape, values: $0.map { T(fromDouble: $0.rounded()) }) }
    }

    func apply<F: BinaryFloatingPoint & NumericElement>(_: F.Type) throws -> Tensor {
        var current = x
        var shape = x.shape
        for (axis, table) in tables.enumerated() {
            guard let table else { continue }
            let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
            var next = shape
            next[axis] = outShape[axis]
            var out = try Tensor(uninitialized: x.dtype, shape: next)
            let weights = table.weights.map { F($0) }
            current.withElements(as: F.self) { src in
                out.withMutableElements(as: F.self) { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                    resizeAxis(s, outer: outer, inDim: shape[axis], inner: inner, outDim: outShape[axis], taps: table.taps,
                               indices: table.indices, weights: weights, output: d)
                }
            }
            current = out
            shape = next
        }
        if current.shape != outShape { current = current.reshaped(outShape) }
        // tf_crop_and_resize: any axis outside the box gives the extrapolation value.
        if tables.contains(where: { $0?.outside != nil }) {
            let rank = outShape.count
            let value = F(extrapolation)
            let masks = tables.map { $0?.outside }
            current.withMutableElements(as: F.self) { dst in
                var index = [Int](repeating: 0, count: rank)
                for e in 0..<dst.count {
                    var outside = false
                    for d in 0..<rank { if let m = masks[d], m[index[d]] { outside = true; break } }
                    if outside { dst[e] = value }
                    var d = rank - 1
                    while d >= 0 {
                        index[d] += 1
                        if index[d] < outShape[d] { break }
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return current
    }
}

func resize(_ x: Tensor, roi roiValues: [Double]?, scales: [Double]?, sizes: [Int]?, axes rawAxes: [Int]?,
            _ a: ResizeAttributes, opset10: Bool) throws -> Tensor {
    let rank = x.rank
    let axes = try (rawAxes ?? Array(0..<rank)).map { try normalizeAxis($0, rank: rank, what: "Resize axis") }
    guard Set(axes).count == axes.count else { throw KerfError.invalidArgument("Resize axes \(rawAxes ?? []) repeat") }
    var scaleOf = [Double](repeating: 1, count: rank)
    var outShape = x.shape
    var widthOf = x.shape.map { Double($0) }
    if let scales {
        guard scales.count == axes.count else {
            throw KerfError.invalidArgument("Resize has \(scales.count) scales for \(axes.count) axes")
        }
        for (k, axis) in axes.enumerated() {
            let s = scales[k]
            guard s.isFinite, s > 0 else { throw KerfError.invalidArgument("Resize scale \(s) must be positive") }
            let size = (Double(x.shape[axis]) * s).rounded(.down)
            guard size <= Double(maxComputedTensorBytes) else { throw KerfError.outOfMemory("Resize output is too large") }
            scaleOf[axis] = s
            outShape[axis] = Int(size)
            widthOf[axis] = Double(Float(s) * Float(x.shape[axis]))
        }
    } else if let sizes {
        guard sizes.count == axes.count else {
            throw KerfError.invalidArgument("Resize has \(sizes.count) sizes for \(axes.count) axes")
        }
        guard sizes.allSatisfy({ $0 >= 0 && $0 <= maxComputedTensorBytes }) else {
            throw KerfError.invalidArgument("Resize sizes \(sizes) are out of range")
        }
        for (k, axis) in axes.enumerated() where x.shape[axis] == 0 && sizes[k] != 0 {
            throw KerfError.invalidArgument("Resize cannot resize an empty axis \(axis) to \(sizes[k])")
        }
        let ratios = axes.enumerated().map { k, axis in x.shape[axis] == 0 ? 1 : Double(sizes[k]) / Double(x.shape[axis]) }
        switch a.keepAspectRatioPolicy {
        case "stretch":
            for (k, axis) in axes.enumerated() {
                scaleOf[axis] = ratios[k]
                outShape[axis] = sizes[k]
                widthOf[axis] = Double(sizes[k])
            }
        case "not_larger", "not_smaller":
            let s = a.keepAspectRatioPolicy == "not_larger" ? (ratios.min() ?? 1) : (ratios.max() ?? 1)
            for axis in axes {
                scaleOf[axis] = s
                outShape[axis] = Int((s * Double(x.shape[axis]) + 0.5).rounded(.down))
                widthOf[axis] = Double(outShape[axis])
            }
        default:
            throw KerfError.unsupported("Resize keep_aspect_ratio_policy '\(a.keepAspectRatioPolicy)' is not supported")
        }
    } else {
        throw KerfError.invalidArgument("Resize needs scales or sizes")
    }
    try checkedElementCount(outShape, dtype: x.dtype, "Resize")
    var roiOf = [(Double, Double)](repeating: (0, 1), count: rank)
    if a.coordinateMode == "tf_crop_and_resize" {
        guard let roiValues, roiValues.count == 2 * axes.count else {
            throw KerfError.invalidArgument("Resize tf_crop_and_resize needs a roi of \(2 * axes.count) values")
        }
        for (k, axis) in axes.enumerated() { roiOf[axis] = (roiValues[k], roiValues[axes.count + k]) }
    }
    var tables: [ResizeTable?] = []
    for d in 0..<rank {
        let table = try resizeTable(inDim: x.shape[d], outDim: outShape[d], outputWidth: widthOf[d], scale: scaleOf[d],
                                    roi: roiOf[d], a, opset10: opset10)
        tables.append(outShape[d] == x.shape[d] && table.isIdentity ? nil : table)
    }
    if x.dtype == .float16 || x.dtype == .bfloat16 {
        let r = try dispatchNumeric(.float, ApplyTables(x: x.convertedToFloat32(), tables: tables, outShape: outShape,
                                                        extrapolation: a.extrapolationValue))
        return try r.convertedFromFloat32(to: x.dtype)
    }
    return try dispatchNumeric(x.dtype, ApplyTables(x: x, tables: tables, outShape: outShape, extrapolation: a.extrapolationValue))
}

enum ResizeOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Resize"] = { c in try makeResize(c, upsample: false) }
        r["Upsample"] = { c in try makeResize(c, upsample: true) }
    }

    private static func makeResize(_ c: OperatorContext, upsample: Bool) throws -> Operator {
        var a = ResizeAttributes()
        let modeName = try c.string("mode", default: "nearest")
        guard let mode = ResizeMode(rawValue: modeName == "bilinear" ? "linear" : modeName) else {
            throw KerfError.unsupported("Resize mode '\(modeName)' is not supported")
        }
        a.mode = mode
        let opset10 = upsample || c.opset < 11
        if opset10 {
            a.coordinateMode = "asymmetric"
            guard mode != .cubic else { throw KerfError.unsupported("Resize-10 has no cubic mode") }
        } else {
            a.coordinateMode = try c.string("coordinate_transformation_mode", default: "half_pixel")
            a.nearestMode = try c.string("nearest_mode", default: "round_prefer_floor")
            a.cubicA = Double(try c.float("cubic_coeff_a", default: -0.75))
            a.excludeOutside = try c.int("exclude_outside", default: 0) != 0
            a.extrapolationValue = Double(try c.float("extrapolation_value", default: 0))
            a.antialias = try c.int("antialias", default: 0) != 0
            a.keepAspectRatioPolicy = try c.string("keep_aspect_ratio_policy", default: "stretch")
        }
        let axes = c.opset >= 18 && !upsample ? try c.ints("axes") : nil
        let attrScales = upsample && c.opset < 9 ? c.node.attribute("scales").flatMap { v -> [Double]? in
            if case .floats(let fs) = v { return fs.map { Double($0) } }
            return nil
        } : nil
        if upsample && c.opset < 9 && attrScales == nil {
            // Upsample-1 used height_scale / width_scale on NCHW.
            let h = Double(try c.float("height_scale", default: 1)), w = Double(try c.float("width_scale", default: 1))
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                guard x.rank == 4 else { throw KerfError.shapeMismatch("Upsample-1 needs a 4-D input") }
                return [try resize(x, roi: nil, scales: [1, 1, h, w], sizes: nil, axes: nil, a, opset10: true)]
            }
        }
        return ClosureOperator { inputs in
            let x = try inputs.required(0)
            if let attrScales { return [try resize(x, roi: nil, scales: attrScales, sizes: nil, axes: nil, a, opset10: true)] }
            if opset10 {
                let scales = try doubles(try inputs.required(1, "scales"), "scales")
                return [try resize(x, roi: nil, scales: scales, sizes: nil, axes: nil, a, opset10: true)]
            }
            let roi = try (inputs.optional(1) ?? nil).flatMap { $0.count == 0 ? nil : try doubles($0, "roi") }
            let scales = try (inputs.optional(2) ?? nil).flatMap { $0.count == 0 ? nil : try doubles($0, "scales") }
            let sizes = try (inputs.optional(3) ?? nil).flatMap { $0.count == 0 ? nil : try intValues($0, "Resize sizes") }
            if scales != nil && sizes != nil { throw KerfError.invalidArgument("Resize takes scales or sizes, not both") }
            return [try resize(x, roi: roi, scales: scales, sizes: sizes, axes: axes, a, opset10: false)]
        }
    }
}
