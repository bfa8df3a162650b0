import KerfCore
import KerfKernels

// Slice (attributes before opset 10, inputs after) and Split (`split` attribute before 13,
// input from 13, `num_outputs` from 18).

/// Where an ONNX Slice of a tensor of `shape` reads: the first element's index on each axis,
/// the step between elements, and the result's shape. Negative starts/ends count from the end;
/// both are clamped to the axis.
struct SliceGeometry {
    var begin: [Int]
    var step: [Int]
    var outShape: [Int]

    init(shape: [Int], starts: [Int], ends: [Int], axes rawAxes: [Int]?, steps rawSteps: [Int]?) throws {
        guard starts.count == ends.count else {
            throw KerfError.invalidArgument("Slice starts (\(starts.count)) and ends (\(ends.count)) differ in length")
        }
        let axes = rawAxes ?? Array(0..<starts.count)
        let steps = rawSteps ?? [Int](repeating: 1, count: starts.count)
        guard axes.count == starts.count, steps.count == starts.count else {
            throw KerfError.invalidArgument("Slice starts, ends, axes and steps must have the same length")
        }
        let rank = shape.count
        begin = [Int](repeating: 0, count: rank)
        step = [Int](repeating: 1, count: rank)
        outShape = shape
        var seen = Set<Int>()
        for k in 0..<starts.count {
            guard axes[k] >= -rank, axes[k] < rank else {
                throw KerfError.invalidArgument("Slice axis \(axes[k]) is out of range for rank \(rank)")
            }
            let a = axes[k] < 0 ? axes[k] + rank : axes[k]
            guard seen.insert(a).inserted else { throw KerfError.invalidArgument("Slice axes \(axes) repeat") }
            var st = steps[k]
            guard st != 0 else { throw KerfError.invalidArgument("Slice step must not be 0") }
            if st == Int.min { st = -Int.max }
            let d = shape[a]
            var s = starts[k], e = ends[k]
            if s < 0 { s += d }
            if e < 0 { e += d }
            var count = 0
            if d == 0 {
                s = 0
            } else if st > 0 {
                s = Swift.min(Swift.max(s, 0), d)
                e = Swift.min(Swift.max(e, 0), d)
                count = e > s ? (e - s - 1) / st + 1 : 0
            } else {
                s = Swift.min(Swift.max(s, 0), d - 1)
                e = Swift.min(Swift.max(e, -1), d - 1)
                count = s > e ? (s - e - 1) / (-st) + 1 : 0
            }
            begin[a] = count > 0 ? s : 0
            step[a] = count > 1 ? st : 1
            outShape[a] = count
        }
    }

    /// The element offset of the first element read, and the offset strides of the result's
    /// axes, in a dense tensor of `shape`.
    func offsets(in shape: [Int]) -> (base: Int, strides: [Int]) {
        let inStrides = denseStrides(shape)
        var base = 0
        for d in 0..<shape.count { base += begin[d] * inStrides[d] }
        return (base, (0..<shape.count).map { inStrides[$0] * step[$0] })
    }
}

/// ONNX Slice: for each listed axis, elements start, start + step, ... before end (`SliceGeometry`).
func slice(_ x: Tensor, starts: [Int], ends: [Int], axes rawAxes: [Int]?, steps rawSteps: [Int]?) throws -> Tensor {
    let geometry = try SliceGeometry(shape: x.shape, starts: starts, ends: ends, axes: rawAxes, steps: rawSteps)
    let outShape = geometry.outShape
    if x.dtype == .string {
        return try movingStrings(x) { try slice($0, starts: starts, ends: ends, axes: rawAxes, steps: rawSteps) }
    }
    let (base, strides) = geometry.offsets(in: x.shape)
    let out = try Tensor(uninitialized: x.dtype, shape: outShape)
    stridedCopy(UnsafeRawPointer(x.storage.pointer), base: base, strides: strides, shape: outShape,
                elementSize: x.dtype.byteSize, output: out.storage.pointer)
    return out
}

/// Splits `x` along `axis` into pieces of the given sizes (which sum to the axis length).
func split(_ x: Tensor, axis: Int, sizes: [Int]) throws -> [Tensor] {
    var start = 0
    var pieces: [Tensor] = []
    for size in sizes {
        pieces.append(try slice(x, starts: [start], ends: [start + size], axes: [axis], steps: [1]))
        start += size
    }
    return pieces
}

enum SliceOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Slice"] = { c in
            if c.opset < 10 {
                guard let starts = try c.ints("starts"), let ends = try c.ints("ends") else {
                    throw KerfError.invalidModel("Slice-\(c.opset) needs starts and ends attributes")
                }
                let axes = try c.ints("axes")
                return ClosureOperator { [try slice(try $0.required(0), starts: starts, ends: ends, axes: axes, steps: nil)] }
            }
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                let starts = try intValues(try inputs.required(1, "starts"), "Slice starts")
                let ends = try intValues(try inputs.required(2, "ends"), "Slice ends")
                let axes = try (inputs.optional(3) ?? nil).map { try intValues($0, "Slice axes") }
                let steps = try (inputs.optional(4) ?? nil).map { try intValues($0, "Slice steps") }
                return [try slice(x, starts: starts, ends: ends, axes: axes, steps: steps)]
            }
        }
        r["Split"] = { c in
            let axisAttr = try c.int("axis", default: 0)
            let attrSplit = c.opset < 13 ? try c.ints("split") : nil
            let numOutputs = c.opset >= 18 ? try c.int("num_outputs") : nil
            let outputCount = c.node.outputs.count
            let splitFromInput = c.opset >= 13 || c.opset == 1
            guard outputCount >= 1 else { throw KerfError.invalidModel("Split needs at least one output") }
            if let n = numOutputs, n != outputCount {
                throw KerfError.invalidModel("Split num_outputs \(n) does not match its \(outputCount) outputs")
            }
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                let axis = try normalizeAxis(axisAttr, rank: x.rank, what: "Split axis")
                guard x.rank > 0 else { throw KerfError.invalidArgument("Split needs a tensor of rank >= 1") }
                let d = x.shape[axis]
                var sizes: [Int]
                let inputSplit = splitFromInput ? try (inputs.optional(1) ?? nil).map { try intValues($0, "Split split") } : nil
                if let given = attrSplit ?? inputSplit {
                    guard given.count == outputCount else {
                        throw KerfError.invalidArgument("Split has \(given.count) sizes for \(outputCount) outputs")
                    }
                    guard given.allSatisfy({ $0 >= 0 && $0 <= d }), given.reduce(0, +) == d else {
                        throw KerfError.invalidArgument("Split sizes \(given) do not add up to the axis length \(d)")
                    }
                    sizes = given
                } else if numOutputs != nil {
                    let chunk = (d + outputCount - 1) / outputCount
                    sizes = [Int](repeating: chunk, count: outputCount - 1)
                    let last = d - chunk * (outputCount - 1)
                    guard last >= 0 else {
                        throw KerfError.invalidArgument("Split cannot cut an axis of length \(d) into \(outputCount) outputs")
                    }
                    sizes.append(last)
                } else {
                    guard d % outputCount == 0 else {
                        throw KerfError.invalidArgument("Split cannot divide an axis of length \(d) into \(outputCount) equal parts")
                    }
                    sizes = [Int](repeating: d / outputCount, count: outputCount)
                }
                return try split(x, axis: axis, sizes: sizes)
            }
        }
    }
}
