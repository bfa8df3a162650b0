import FoundationEssentials
import KerfCore
import KerfKernels

// Ops that move or reinterpret data without arithmetic: Reshape, Flatten, Transpose,
// Squeeze, Unsqueeze, Concat, Shape, Gather, Identity, Dropout.

/// Normalizes a possibly negative axis against `rank`: the result indexes `shape` (0 ..< rank).
/// A scalar has no axis: rank 0 always throws.
func normalizeAxis(_ axis: Int, rank: Int, what: String = "axis") throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0, a < rank else {
        throw KerfError.invalidArgument("\(what) \(axis) is out of range for rank \(rank)")
    }
    return a
}

/// Reads an int32/int64 tensor as [Int].
func intValues(_ t: Tensor, _ what: String) throws -> [Int] {
    switch t.dtype {
    case .int64: return t.withElements(as: Int64.self) { $0.map { Int($0) } }
    case .int32: return t.withElements(as: Int32.self) { $0.map { Int($0) } }
    default: throw KerfError.shapeMismatch("\(what) must be int64 or int32, got \(t.dtype)")
    }
}

func transpose(_ x: Tensor, perm: [Int], threads: Int = 1) throws -> Tensor {
    guard perm.count == x.rank, Set(perm) == Set(0..<x.rank) else {
        throw KerfError.invalidArgument("perm \(perm) is not a permutation of rank \(x.rank)")
    }
    let outShape = perm.map { x.shape[$0] }
    if x.dtype == .string {
        var idx = try Tensor(uninitialized: .int64, shape: x.shape)
        idx.withMutableElements(as: Int64.self) { for i in 0..<$0.count { $0[i] = Int64(i) } }
        let moved = try transpose(idx, perm: perm).array(of: Int64.self)
        return Tensor(shape: outShape, strings: moved.map { x.strings[Int($0)] })
    }
    let out = try Tensor(uninitialized: x.dtype, shape: outShape)
    transpose(UnsafeRawPointer(x.storage.pointer), shape: x.shape, perm: perm, elementSize: x.dtype.byteSize,
              output: out.storage.pointer, threads: threads)
    return out
}

/// `transpose` of an NCHW <-> NHWC layout change the channels-last rewrite made (perm [0, 2, 3, 1]
/// or [0, 3, 1, 2] of a rank-4 float or byte tensor), per image: floats split over the OpenMP
/// team oneDNN's convolutions run on, bytes in 16x16 tiles. nil for anything else.
func changingImageLayout(_ x: Tensor, perm: [Int]) throws -> Tensor? {
    guard x.rank == 4, perm == [0, 2, 3, 1] || perm == [0, 3, 1, 2], x.dtype == .float || (x.dtype.byteSize == 1 && x.dtype != .string) else {
        return nil
    }
    let out = try Tensor(uninitialized: x.dtype, shape: perm.map { x.shape[$0] })
    if x.dtype != .float {
        let toLast = perm == [0, 2, 3, 1]
        let channels = toLast ? x.shape[1] : x.shape[3], pixels = toLast ? x.shape[2] * x.shape[3] : x.shape[1] * x.shape[2]
        let src = UnsafePointer(x.storage.pointer.assumingMemoryBound(to: UInt8.self)), dst = out.storage.pointer.assumingMemoryBound(to: UInt8.self)
        for n in 0..<x.shape[0] {
            let offset = n * channels * pixels
            // An [R, C] matrix made [C, R]: NCHW -> NHWC is R = channels, NHWC -> NCHW R = pixels.
            transposeToChannelsLast(src + offset, channels: toLast ? channels : pixels, pixels: toLast ? pixels : channels,
                                    into: dst + offset)
        }
        return out
    }
    let src = UnsafePointer(x.storage.pointer.assumingMemoryBound(to: Float.self))
    let dst = out.storage.pointer.assumingMemoryBound(to: Float.self)
    if perm == [0, 2, 3, 1] {
        channelsFirstToLast(src, images: x.shape[0], channels: x.shape[1], positions: x.shape[2] * x.shape[3], dst, team: true)
    } else {
        channelsLastToFirst(src, images: x.shape[0], channels: x.shape[3], positions: x.shape[1] * x.shape[2], dst, team: true)
    }
    return out
}

/// Concatenates tensors of one dtype along `axis`.
func concat(_ xs: [Tensor], axis rawAxis: Int) throws -> Tensor {
    guard let first = xs.first else { throw KerfError.invalidArgument("Concat needs at least one input") }
    let rank = first.rank
    let axis = try normalizeAxis(rawAxis, rank: rank)
    var outShape = first.shape
    outShape[axis] = 0
    for x in xs {
        guard x.dtype == first.dtype, x.rank == rank else {
            throw KerfError.shapeMismatch("Concat inputs must share dtype and rank: \(first.dtype)\(first.shape) vs \(x.dtype)\(x.shape)")
        }
        for d in 0..<rank where d != axis && x.shape[d] != first.shape[d] {
            throw KerfError.shapeMismatch("Concat inputs differ outside axis \(axis): \(first.shape) vs \(x.shape)")
        }
        outShape[axis] += x.shape[axis]
    }
    let outer = first.shape[..<axis].reduce(1, *)
    if first.dtype == .string {
        var strings: [Data] = []
        for o in 0..<outer {
            for x in xs {
                let inner = x.shape[axis...].reduce(1, *)
                strings.append(contentsOf: x.strings[(o * inner)..<((o + 1) * inner)])
            }
        }
        return Tensor(shape: outShape, strings: strings)
    }
    let out = try Tensor(uninitialized: first.dtype, shape: outShape)
    let size = first.dtype.byteSize
    var dst = out.storage.pointer
    for o in 0..<outer {
        for x in xs {
            let chunk = x.shape[axis...].reduce(1, *) * size
            dst.copyMemory(from: x.storage.pointer + o * chunk, byteCount: chunk)
            dst += chunk
        }
    }
    return out
}

/// Gathers slices of `data` along `axis` at `indices` (negative indices count from the end).
func gather(_ data: Tensor, _ indices: Tensor, axis rawAxis: Int) throws -> Tensor {
    guard data.rank >= 1 else { throw KerfError.invalidArgument("Gather needs data of rank >= 1") }
    let axis = try normalizeAxis(rawAxis, rank: data.rank)
    let dim = data.shape[axis]
    let resolved = try resolvedIndices(indices, axisSize: dim, "Gather index")
    let outShape = Array(data.shape[..<axis]) + indices.shape + Array(data.shape[(axis + 1)...])
    let outer = data.shape[..<axis].reduce(1, *), inner = data.shape[(axis + 1)...].reduce(1, *)
    guard try checkedElementCount(outShape, dtype: data.dtype, "Gather") > 0 else {
        return try Tensor(uninitialized: data.dtype, shape: outShape)
    }
    var offsets: [Int] = []
    offsets.reserveCapacity(outer * resolved.count)
    for o in 0..<outer { for r in resolved { offsets.append((o * dim + r) * inner) } }
    return try gatherSlices(data, offsets: offsets, slice: inner, shape: outShape)
}

/// Resolves an ONNX Reshape target: 0 copies the input dim (unless allowzero), -1 is inferred.
func reshapeTarget(_ requested: [Int], input: [Int], allowZero: Bool) throws -> [Int] {
    var shape = requested
    var inferred: Int? = nil
    for (i, d) in requested.enumerated() {
        if d == -1 {
            guard inferred == nil else { throw KerfError.invalidArgument("Reshape target \(requested) has more than one -1") }
            inferred = i
        } else if d == 0 && !allowZero {
            guard i < input.count else { throw KerfError.invalidArgument("Reshape target \(requested) copies dim \(i) of rank-\(input.count) input") }
            shape[i] = input[i]
        } else if d < 0 {
            throw KerfError.invalidArgument("Reshape target \(requested) has negative dim \(d)")
        }
    }
    let total = input.reduce(1, *)
    if let i = inferred {
        let known = overflowCheckedProduct(shape.enumerated().filter { $0.offset != i }.map(\.element))
        guard let known, known != 0, total % known == 0 else {
            throw KerfError.shapeMismatch("cannot reshape \(input) to \(requested)")
        }
        shape[i] = total / known
    }
    // Checked: this module is built -Ounchecked, where a wrapped product could equal `total`.
    guard overflowCheckedProduct(shape) == total else {
        throw KerfError.shapeMismatch("cannot reshape \(input) (\(total) elements) to \(requested)")
    }
    return shape
}

/// The product of non-negative `dims`, or nil when it overflows Int.
private func overflowCheckedProduct(_ dims: [Int]) -> Int? {
    var product = 1
    for d in dims {
        let (p, overflow) = product.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        product = p
    }
    return product
}

enum ShapeOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Identity"] = { _ in ClosureOperator { [try $0.required(0)] } }
        r["Dropout"] = { c in
            // Inference is the identity. Training mode with a non-zero ratio is random, which
            // Kerf does not reproduce; ratio 0 keeps everything.
            let attrRatio = try c.float("ratio", default: 0.5)
            let opset = c.opset
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                var training = false
                if opset >= 12, let t = inputs.optional(2) ?? nil { training = t.withElements(as: Bool.self) { $0.first ?? false } }
                var ratio = attrRatio
                if opset >= 12 {
                    ratio = 0.5
                    if let rt = inputs.optional(1) ?? nil { ratio = Float(try scalarValue(rt)) }
                }
                if training && ratio > 0 { throw KerfError.unsupported("training-mode Dropout with ratio \(ratio) is random; Kerf runs inference only") }
                // The spec leaves the mask unfilled before opset 12; ONNX Runtime returns all false
                // there, and all true (every element kept) from opset 12 on.
                var mask = try Tensor(zeros: .bool, shape: x.shape)
                if opset >= 12 { mask.withMutableElements(as: UInt8.self) { $0.update(repeating: 1) } }
                return [x, mask]
            }
        }
        r["Reshape"] = { c in
            let allowZero = try c.int("allowzero", default: 0) != 0
            let attrShape = c.opset < 5 ? try c.ints("shape") : nil
            // A constant shape is read once; a feed that replaces it (an overridable initializer) is read per run.
            let constant = c.opset < 5 ? nil : c.constant(1).flatMap { t in (try? intValues(t, "Reshape shape")).map { (t.storage, $0) } }
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                let requested: [Int]
                if let attrShape {
                    requested = attrShape
                } else if let constant, inputs.count > 1, inputs[1]?.storage === constant.0 {
                    requested = constant.1
                } else {
                    requested = try intValues(try inputs.required(1, "shape"), "Reshape shape")
                }
                return [x.reshaped(try reshapeTarget(requested, input: x.shape, allowZero: allowZero))]
            }
        }
        r["Flatten"] = { c in
            let axisAttr = try c.int("axis", default: 1)
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                let axis = axisAttr < 0 ? axisAttr + x.rank : axisAttr
                guard axis >= 0, axis <= x.rank else { throw KerfError.invalidArgument("Flatten axis \(axisAttr) is out of range for rank \(x.rank)") }
                return [x.reshaped([x.shape[..<axis].reduce(1, *), x.shape[axis...].reduce(1, *)])]
            }
        }
        r["Transpose"] = { c in
            let perm = try c.ints("perm")
            let threads = c.options.resolvedThreads
            let layoutChange = try c.int(FusedAttributes.layoutChange, default: 0) != 0
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                let perm = perm ?? Array((0..<x.rank).reversed())
                if layoutChange, let y = try changingImageLayout(x, perm: perm) { return [y] }
                return [try transpose(x, perm: perm, threads: threads)]
            }
        }
        r["Squeeze"] = { c in
            let attrAxes = c.opset < 13 ? try c.ints("axes") : nil
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                let axesRaw = try attrAxes ?? (inputs.optional(1) ?? nil).map { try intValues($0, "Squeeze axes") }
                let axes: Set<Int>
                if let axesRaw {
                    axes = Set(try axesRaw.map { try normalizeAxis($0, rank: x.rank) })
                    for a in axes where x.shape[a] != 1 {
                        throw KerfError.shapeMismatch("Squeeze axis \(a) has size \(x.shape[a]), not 1")
                    }
                } else {
                    axes = Set(x.shape.indices.filter { x.shape[$0] == 1 })
                }
                return [x.reshaped(x.shape.indices.filter { !axes.contains($0) }.map { x.shape[$0] })]
            }
        }
        r["Unsqueeze"] = { c in
            let attrAxes = c.opset < 13 ? try c.ints("axes") : nil
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                let axesRaw = try attrAxes ?? intValues(try inputs.required(1, "axes"), "Unsqueeze axes")
                let outRank = x.rank + axesRaw.count
                let axes = try axesRaw.map { try normalizeAxis($0, rank: outRank) }
                guard Set(axes).count == axes.count else { throw KerfError.invalidArgument("Unsqueeze axes \(axesRaw) repeat") }
                var shape: [Int] = []
                var next = 0
                for d in 0..<outRank {
                    if axes.contains(d) { shape.append(1) } else { shape.append(x.shape[next]); next += 1 }
                }
                return [x.reshaped(shape)]
            }
        }
        r["Concat"] = { c in
            guard let axis = try c.int("axis") else { throw KerfError.invalidModel("Concat needs an axis attribute") }
            return ClosureOperator { inputs in [try concat(inputs.compactMap { $0 }, axis: axis)] }
        }
        r["Shape"] = { c in
            let start = try c.int("start"), end = try c.int("end")
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                let r = x.rank
                func clamp(_ v: Int) -> Int { Swift.min(Swift.max(v < 0 ? v + r : v, 0), r) }
                let s = clamp(start ?? 0), e = clamp(end ?? r)
                let dims = s < e ? Array(x.shape[s..<e]) : []
                return [Tensor(shape: [dims.count], values: dims.map { Int64($0) })]
            }
        }
        r["Size"] = { _ in ClosureOperator { [Tensor(scalar: Int64(try $0.required(0).count))] } }
        r["Gather"] = { c in
            let axis = try c.int("axis", default: 0)
            return ClosureOperator { [try gather(try $0.required(0), try $0.required(1), axis: axis)] }
        }
    }
}
