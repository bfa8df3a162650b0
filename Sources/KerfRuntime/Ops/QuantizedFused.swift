import KerfCore
import KerfKernels

// The int8 operators the optimizer fuses quantized chains into (domain "kerf", only in a
// session's private graph; see Optimizer/QuantizedFusion.swift for the patterns):
//
//  kerf.DynamicQuantizedMatMul(X float [..., K], Wq int8 [K, N], Wzp, Wscale[, bias float [N]])
//      -> float [..., N]: X quantized to uint8 as DynamicQuantizeLinear does, int8 GEMM,
//      Float(acc) * (x_scale * Wscale[j]) (+ bias[j]). Or X already quantized: uint8 X with
//      x_scale and x_zp (a DynamicQuantizeLinear's outputs) as inputs 5 and 6. Optional input 7,
//      x_range: float X's valueRange as [low, high] (from the producer), saving the pass over X
//      that measures it. An optional second output gives the output's range.
//  kerf.QuantizedMatMul(Xq, x_scale, x_zp, Wq, w_scale[, bias_q int32, bias_scale][, y_scale, y_zp])
//      attribute transB; Xq uint8 / int8 [..., K], Wq int8 [K, N] ([N, K] with transB).
//  kerf.QuantizedConv(same inputs, Wq [M, C/group, k...]) with Conv's attributes.
//      Both: per-tensor x, per-tensor or per-output-channel w (zero point 0); with y_scale and
//      y_zp the output is requantized to y_zp's dtype (a fused Relu / Clip narrows the range),
//      without them it is float: Float(acc) * x_scale * w_scale[j] + bias_q[j] * bias_scale[j].
//      Integer products are exact on every CPU. kerf.QuantizedMatMul may take a 10th input, a float
//      bias [N] (then no bias_q): float output Float(acc) * x_scale * w_scale[j] + bias[j]. With
//      a float bias or a fused Gelu, y_scale and y_zp quantize that float output (after the
//      activation) as QuantizeLinear does, instead of requantizing the integer sums.
//  Both MatMuls may carry a fused activation (FusedAttributes), Gelu included, on a float output.
//  With a float output, input 10 (kerf.QuantizedMatMul) or 8 (kerf.DynamicQuantizedMatMul), the
//  shape of a Reshape to [B, S, H, D], and attribute head_perm (213 or 231) give the output as
//  Transpose(perm 0,2,1,3 or 0,2,3,1) of that Reshape: an attention's queries, keys, values.
//  Or inputs 11...13 (kerf.QuantizedMatMul) / 9...11 (kerf.DynamicQuantizedMatMul): a residual
//  added to the float output, and a LayerNorm after it (Ops/ProductTail.swift).
//  A requantized kerf.QuantizedMatMul may take a byte table from input 14 on, applied to its
//  output: a kerf.QuantizedTable's (14: table) or QuantizedChannelTable's (14...20) inputs after
//  the first, with attributes table_channels (1: per channel), table_to and table_rank.

enum FusedQuantizedOps {
    static let domain = "kerf"

    static func register(_ r: inout [String: OperatorFactory]) {
        r["\(domain):DynamicQuantizedMatMul"] = { c in try DynamicQuantizedMatMul(c) }
        r["\(domain):QuantizedMatMul"] = { c in try QuantizedProduct(c, conv: false) }
        r["\(domain):QuantizedConv"] = { c in try QuantizedProduct(c, conv: true) }
        r["\(domain):\(ChannelsLast.quantizedConv)"] = { c in try QuantizedProduct(c, conv: true, channelsLast: true) }
        registerElementwise(&r)
    }

    /// For tests: how many times a fused int8 operator ran.
    nonisolated(unsafe) static var runs = 0
}

extension OperatorContext {
    /// A constant input the fused op needs at creation.
    func requiredConstant(_ index: Int, _ what: String) throws -> Tensor {
        guard let t = constant(index) else { throw KerfError.invalidModel("\(node.label): \(what) must be a constant") }
        return t
    }

    /// A constant input, or nil when the input is omitted.
    func optionalConstant(_ index: Int, _ what: String) throws -> Tensor? {
        guard index < node.inputs.count, !node.inputs[index].isEmpty else { return nil }
        return try requiredConstant(index, what)
    }
}

/// Row-major [rows, n] float output of `x` [..., K] times the packed weight, with an optional
/// fused activation.
final class DynamicQuantizedMatMul: Operator {
    let weights: PackedInt8Weights
    let weightScales: [Float]
    let bias: [Float]?
    let activation: Activation
    let threads: Int

    /// Whether a second output gives the output's `valueRange` (as [low, high]).
    let reportsRange: Bool

    init(_ c: OperatorContext) throws {
        let w = try c.requiredConstant(1, "W"), zeros = try integerValues(try c.requiredConstant(2, "W zero point"))
        guard w.dtype == .int8, w.rank == 2 else { throw KerfError.invalidModel("\(c.node.label): W must be 2-D int8") }
        weights = packWeights(w, offset: 0, k: w.shape[0], n: w.shape[1], zeroPoints: zeros,
                              layout: int8Layout(activation: .uint8, weight: .int8))
        weightScales = try floatScalars(try c.requiredConstant(3, "W scale"))
        bias = try c.optionalConstant(4, "bias").map { $0.array(of: Float.self) }
        activation = try c.fusedActivation()
        threads = c.options.resolvedThreads
        reportsRange = c.node.outputs.count > 1 && !c.node.outputs[1].isEmpty
        keysTransposed = try c.int("head_perm", default: 213) == 231
        tail = try ProductTail(c, base: 9, n: weights.n)
        headFallback = c.node.inputs.count > 8 && !c.node.inputs[8].isEmpty ? try HeadFallback(c, keysTransposed: keysTransposed) : nil
    }

    let headFallback: HeadFallback?

    /// With input 8 (a Reshape's shape): the output in head layout (`headLayout`).
    let keysTransposed: Bool
    /// Inputs 9...11: a residual and LayerNorm finished in the epilogue.
    let tail: ProductTail?

    /// X's range: given as input 7 (the producer's second output) or measured.
    private func range(of x: Tensor, _ inputs: [Tensor?]) throws -> (low: Float, high: Float) {
        guard inputs.count > 7, let given = inputs[7] else {
            return valueRange(x.storage.pointer.assumingMemoryBound(to: Float.self), count: x.count)
        }
        guard given.dtype == .float, given.count == 2 else { throw KerfError.shapeMismatch("x_range must be two floats") }
        let r = given.array(of: Float.self)
        return (r[0], r[1])
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try inputs.required(0, "X")
        let k = weights.k, n = weights.n
        let quantized = x.dtype == .uint8
        guard x.dtype == .float || quantized, x.rank >= 1, x.shape[x.rank - 1] == k else {
            throw KerfError.shapeMismatch("X of shape \(x.shape) (\(x.dtype)) does not fit W [\(k), \(n)]")
        }
        FusedQuantizedOps.runs &+= 1
        let rows = x.count / max(k, 1)
        var productShape = x.shape
        productShape[x.rank - 1] = n
        let heads = headLayout(inputs, 8, keysTransposed: keysTransposed, productShape: productShape)
        let residual = try tail?.residual(inputs, productShape: productShape)
        let y = try Tensor(uninitialized: .float, shape: heads?.1 ?? productShape)
        let scratch = ScratchPool.shared.take()
        defer { ScratchPool.shared.give(scratch) }
        let blockRows = int8GemmBlockRows(m: rows, n: n, k: k)
        let blocks = reportsRange ? (rows + blockRows - 1) / blockRows : 0
        // Scratch: the n column scales, each block's output range, then (float X) X as uint8.
        scratch.reserve((n + 2 * blocks) * 4 + (quantized ? 0 : x.count))
        let scales = scratch.pointer!.bindMemory(to: Float.self, capacity: n + 2 * blocks)
        let ranges = scales + n  // [low, high] per block
        ranges.initialize(repeating: 0, count: 2 * blocks)  // (blocks that never run, N = 0, stay at 0)
        let buffer = quantized ? nil : (scratch.pointer! + (n + 2 * blocks) * 4).bindMemory(to: UInt8.self, capacity: x.count)
        let scale: Float, zero: UInt8
        if let buffer {
            let xp = x.storage.pointer.assumingMemoryBound(to: Float.self)
            let r = try range(of: x, inputs)
            (scale, zero) = dynamicQuantizationParameters(low: r.low, high: r.high)
            quantize(xp, count: x.count, scale: scale, zeroPoint: Int32(zero), lo: 0, hi: 255, into: buffer)
        } else {
            let s = try inputs.required(5, "x_scale"), z = try inputs.required(6, "x_zero_point")
            guard s.dtype == .float, s.count == 1, z.dtype == .uint8, z.count == 1 else {
                throw KerfError.shapeMismatch("x_scale and x_zero_point must be one float and one uint8")
            }
            (scale, zero) = (s.array(of: Float.self)[0], z.array(of: UInt8.self)[0])
        }
        let xq = buffer.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(x.storage.pointer)
        // As the graph computes it: Mul(x_scale, w_scale), then Mul(Cast(acc), that) [+ bias].
        weightScales.withUnsafeBufferPointer { w in
            for j in 0..<n { scales[j] = scale * w[w.count == n ? j : 0] }
        }
        let out = y.storage.pointer.assumingMemoryBound(to: Float.self)
        do {
            let s = UnsafeBufferPointer(start: scales, count: n)
            withOptionalBuffer(bias) { bias in
                do {
                    int8GemmByRowBlocks(m: rows, a: xq, aSigned: false, lda: k, aZeroPoint: Int32(zero), b: weights, threads: threads) { acc, offsets, first, count, scratch in
                        let block = heads == nil ? out + first * n : scratch
                        dequantizeProduct(acc, m: count, n: n, ldAcc: n, offsets: offsets, scales: s, bias: bias, into: block, rowStride: n, columnStride: 1)
                        activation.apply(block, count: count * n)
                        if let residual {  // (no head layout with a tail: scratch is free)
                            tail!.apply(block, first: first, count: count, n: n, residual: residual.storage.pointer.assumingMemoryBound(to: Float.self),
                                        scratch: scratch)
                        }
                        if reportsRange {  // each block's range while it is in cache, for the output's range
                            let r = valueRange(block, count: count * n)
                            (ranges[2 * (first / blockRows)], ranges[2 * (first / blockRows) + 1]) = (r.low, r.high)
                        }
                        heads?.0.place(block, first: first, count: count, into: out)
                    }
                }
            }
        }
        if let tail, residual == nil { return [try tail.applyUnfused(y, inputs)] }
        if heads == nil, let headFallback { return [try headFallback.apply(y, inputs, 8)] }
        guard reportsRange else { return [y] }
        var low: Float = 0, high: Float = 0
        for b in 0..<blocks {
            if ranges[2 * b] < low { low = ranges[2 * b] }
            if ranges[2 * b + 1] > high { high = ranges[2 * b + 1] }
        }
        return [y, Tensor(shape: [2], values: [low, high])]
    }
}

/// The head layout of a product fused with the graph's Reshape (shape given at run time as
/// input `index`) and Transpose (attribute "head_perm": 213 or 231), or nil when the op has none.
/// Nil also when the reshape does not split the product's last axis into heads: the product is
/// then written as it is and `HeadFallback` runs the Reshape and Transpose.
func headLayout(_ inputs: [Tensor?], _ index: Int, keysTransposed: Bool, productShape: [Int]) -> (HeadLayout, [Int])? {
    guard inputs.count > index, let shapeTensor = inputs[index] else { return nil }
    guard shapeTensor.dtype == .int64, shapeTensor.count == 4, productShape.count >= 2 else { return nil }
    var dims = shapeTensor.array(of: Int64.self).map(Int.init)
    for i in 0..<4 where dims[i] == 0 {
        guard i < productShape.count else { return nil }
        dims[i] = productShape[i]
    }
    let total = productShape.reduce(1, *)
    if let unknown = dims.firstIndex(of: -1) {
        let known = dims.enumerated().filter { $0.offset != unknown }.reduce(1) { $0 * $1.element }
        guard known > 0, total % known == 0 else { return nil }
        dims[unknown] = total / known
    }
    let n = productShape[productShape.count - 1], rows = total / max(n, 1)
    guard dims.allSatisfy({ $0 >= 0 }), dims[0] * dims[1] == rows, dims[2] * dims[3] == n, dims[1] > 0 else { return nil }
    let layout = HeadLayout(sequence: dims[1], heads: dims[2], headSize: dims[3], keysTransposed: keysTransposed)
    return (layout, layout.shape(batch: dims[0]))
}

/// The graph's Reshape and Transpose themselves, for a head shape `headLayout` does not take.
struct HeadFallback {
    let reshape: Operator, transpose: Operator

    init(_ c: OperatorContext, keysTransposed: Bool) throws {
        func op(_ type: String, _ attributes: [Attribute]) throws -> Operator {
            let node = Node(name: c.node.name, opType: type, inputs: ["x", "s"], outputs: ["y"], attributes: attributes)
            return try OperatorRegistry.makeOperator(OperatorContext(node: node, opset: max(c.opset, 14), constantInputs: [nil, nil], options: c.options))
        }
        reshape = try op("Reshape", [])
        transpose = try op("Transpose", [Attribute(name: "perm", value: .ints(keysTransposed ? [0, 2, 3, 1] : [0, 2, 1, 3]))])
    }

    /// y (the product, written as it is) reshaped by the shape input and transposed.
    func apply(_ y: Tensor, _ inputs: [Tensor?], _ index: Int) throws -> Tensor {
        guard inputs.count > index, let shape = inputs[index] else { return y }
        return try transpose.run([try reshape.run([y, shape])[0]])[0]
    }
}

/// kerf.QuantizedMatMul and kerf.QuantizedConv (see the file comment); as kerf.NhwcQuantizedConv
/// (`channelsLast`), X [N, H, W, C] and Y [N, OH, OW, M] are channels-last 2-D images.
final class QuantizedProduct: Operator {
    let conv: Bool
    let channelsLast: Bool
    let window: WindowAttributes?
    let group: Int
    /// One packed weight per group ([K, N] for MatMul; [k... x C/group, M/group] for Conv).
    let weights: [PackedInt8Weights]
    let kernel: [Int]
    let xScale: Float, xZero: Int32, xType: DType
    /// x_scale * w_scale[j] (float output) or that / y_scale (requantized), 1 or N entries.
    let multipliers: [Float]
    let biasQ: [Int32]?
    let biasF: [Float]?
    /// Requantized output: dtype, zero point, range after a fused activation.
    let output: (dtype: DType, zero: Int32, lo: Int32, hi: Int32)?
    /// MatMul only: the float output (with float bias and activation) quantized as QuantizeLinear
    /// does, to this type, scale and zero point.
    let finalQuantization: (dtype: DType, scale: Float, zero: Int32, lo: Int32, hi: Int32)?
    let activation: Activation
    let threads: Int
    /// MatMul with input 10 (a Reshape's shape): the float output in head layout (`headLayout`).
    let keysTransposed: Bool
    /// MatMul with inputs 11...13: a residual and LayerNorm finished in the float epilogue.
    let tail: ProductTail?
    let headFallback: HeadFallback?

    init(_ c: OperatorContext, conv: Bool, channelsLast: Bool = false) throws {
        self.conv = conv
        keysTransposed = try c.int("head_perm", default: 213) == 231
        let w3 = try c.requiredConstant(3, "W")
        tail = conv || w3.rank != 2 ? nil : try ProductTail(c, base: 11, n: w3.shape[try c.int("transB", default: 0) != 0 ? 0 : 1])
        headFallback = !conv && c.node.inputs.count > 10 && !c.node.inputs[10].isEmpty ? try HeadFallback(c, keysTransposed: keysTransposed) : nil
        self.channelsLast = channelsLast
        threads = c.options.resolvedThreads
        biasRank = try c.int("bias_rank", default: 0)
        outputTable = !conv && c.node.inputs.count > 14 && !c.node.inputs[14].isEmpty
            ? try ByteTable(c, base: 14, perChannel: try c.int("table_channels", default: 0) != 0,
                            to: try c.int("table_to", default: Int(DType.uint8.rawValue)), rank: try c.int("table_rank", default: 0))
            : nil
        let xScale = try floatScalars(try c.requiredConstant(1, "x scale"))[0]
        self.xScale = xScale
        let xZeroTensor = try c.requiredConstant(2, "x zero point")
        xZero = try integerValues(xZeroTensor)[0]
        xType = xZeroTensor.dtype
        let w = try c.requiredConstant(3, "W")
        guard w.dtype == .int8 else { throw KerfError.invalidModel("\(c.node.label): W must be int8") }
        let wScales = try floatScalars(try c.requiredConstant(4, "w scale"))
        // A QDQ product means exactly what its float DequantizeLinear -> op -> QuantizeLinear
        // compute (ONNX Runtime's fused QLinearConv / QLinearMatMul / QGemm depart from that
        // without VNNI: their u8s8 pair sums saturate).
        let layout = int8Layout(activation: .uint8, weight: .int8)
        if conv {
            window = try WindowAttributes(c)
            group = try c.int("group", default: 1)
            guard w.rank >= 3, group >= 1, w.shape[0] % group == 0 else { throw KerfError.invalidModel("\(c.node.label): bad W \(w.shape)") }
            kernel = Array(w.shape[2...])
            let mg = w.shape[0] / group, cg = w.shape[1], kc = kernel.reduce(1, *)
            // Per group: B[(tap, channel), j] = W[g * mg + j, channel, tap] (im2row's tap order).
            let values = w.array(of: Int8.self)
            weights = (0..<group).map { g in
                var b = [Int8](repeating: 0, count: kc * cg * mg)
                for j in 0..<mg {
                    for ch in 0..<cg { for t in 0..<kc { b[(t * cg + ch) * mg + j] = values[((g * mg + j) * cg + ch) * kc + t] } }
                }
                return b.withUnsafeBufferPointer {
                    PackedInt8Weights($0.baseAddress!, k: kc * cg, n: mg, rowStride: mg, columnStride: 1, zeroPoints: [0], layout: layout)
                }
            }
        } else {
            window = nil
            group = 1
            kernel = []
            let transB = try c.int("transB", default: 0) != 0
            guard w.rank == 2 else { throw KerfError.invalidModel("\(c.node.label): W must be 2-D") }
            let (k, n) = transB ? (w.shape[1], w.shape[0]) : (w.shape[0], w.shape[1])
            weights = [packWeights(w, offset: 0, k: k, n: n, zeroPoints: [0], layout: layout, transposed: transB)]
        }
        let outputs = weights.count * weights[0].n
        guard wScales.count == 1 || wScales.count == outputs else { throw KerfError.invalidModel("\(c.node.label): w scale count") }
        var scales = wScales.map { xScale * $0 }
        let biasQ = try c.optionalConstant(5, "bias").map(integerValues)
        self.biasQ = biasQ
        let floatBiasGiven = try c.optionalConstant(9, "float bias") != nil
        if biasQ != nil && floatBiasGiven {
            throw KerfError.invalidModel("\(c.node.label): an int32 bias and a float bias")
        }
        let biasF: [Float]?
        if let biasQ {
            let biasScales = try floatScalars(try c.requiredConstant(6, "bias scale"))
            biasF = biasQ.indices.map { Float(biasQ[$0]) * biasScales[biasScales.count == 1 ? 0 : $0] }
        } else {
            biasF = try c.optionalConstant(9, "float bias").map { try floatScalars($0) }
            guard biasF == nil || biasF!.count == outputs else { throw KerfError.invalidModel("\(c.node.label): float bias count") }
        }
        let activation = try c.fusedActivation()
        self.activation = activation
        // A float bias or a GELU: the float result is computed, then quantized as QuantizeLinear does.
        let quantizesFloat = try c.optionalConstant(9, "float bias") != nil || activation == .gelu
        if quantizesFloat, let yScaleTensor = try c.optionalConstant(7, "y scale") {
            guard !conv else { throw KerfError.invalidModel("\(c.node.label): a Conv output is requantized in integers") }
            let yZeroTensor = try c.requiredConstant(8, "y zero point")
            guard let (lo, hi) = quantizedRange(yZeroTensor.dtype) else { throw KerfError.invalidModel("\(c.node.label): output type") }
            finalQuantization = (yZeroTensor.dtype, try floatScalars(yScaleTensor)[0], try integerValues(yZeroTensor)[0], lo, hi)
            output = nil
        } else if let yScaleTensor = try c.optionalConstant(7, "y scale") {
            finalQuantization = nil
            let yScale = try floatScalars(yScaleTensor)[0], yZeroTensor = try c.requiredConstant(8, "y zero point")
            let zero = try integerValues(yZeroTensor)[0]
            guard var (lo, hi) = quantizedRange(yZeroTensor.dtype) else { throw KerfError.invalidModel("\(c.node.label): output type") }
            func q(_ v: Float) -> Int32 { Int32(clamping: Int64((v / yScale).rounded(.toNearestOrEven)) + Int64(zero)) }
            switch activation {
            case .none: break
            case .relu: lo = max(lo, zero)
            case .clip(let a, let b):
                if a.isFinite { lo = max(lo, q(a)) }
                if b.isFinite { hi = min(hi, q(b)) }
            default: throw KerfError.invalidModel("\(c.node.label): activation cannot be requantized")
            }
            output = (yZeroTensor.dtype, zero, lo, hi)
            scales = scales.map { $0 / yScale }
        } else {
            finalQuantization = nil
            output = nil
        }
        // One per output channel: the epilogue's vector kernels read them per column.
        multipliers = scales.count == outputs ? scales : [Float](repeating: scales[0], count: outputs)
        self.biasF = biasF.map { $0.count == outputs ? $0 : [Float](repeating: $0[0], count: outputs) }
        // x's zero point is a constant: where the correction for it is one int32 per column, it
        // joins the epilogue (the int32 bias, for requantized outputs) instead of a pass of its own.
        let zero = xZero, signed = xType == .int8
        let offsets = weights.map { $0.columnOffsets(aZeroPoint: zero, aSigned: signed) }
        let allOffsets = offsets.allSatisfy { $0 != nil } ? offsets.flatMap { $0! } : nil
        columnOffsets = allOffsets
        offsetBias = allOffsets.map { o in o.indices.map { j in (biasQ.map { $0[$0.count == 1 ? 0 : j] } ?? 0) &+ o[j] } }
    }

    /// The zero-point correction per output channel (see `PackedInt8Weights.columnOffsets`),
    /// nil where it needs A's rows.
    let columnOffsets: [Int32]?
    /// biasQ (or 0) &+ columnOffsets, per output channel.
    let offsetBias: [Int32]?
    /// The rank of the float bias's constant (attribute bias_rank; its dims are 1 but the last):
    /// the output has at least that rank.
    let biasRank: Int
    /// MatMul with a requantized output and inputs 14...: the byte table applied to that output
    /// (a kerf.QuantizedTable / QuantizedChannelTable that read it, fused).
    let outputTable: ByteTable?

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try inputs.required(0, "x")
        guard x.dtype == xType else { throw KerfError.shapeMismatch("x is \(x.dtype), expected \(xType)") }
        FusedQuantizedOps.runs &+= 1
        return [conv ? try runConv(x) : try runMatMul(x, inputs)]
    }

    private func runMatMul(_ x: Tensor, _ inputs: [Tensor?]) throws -> Tensor {
        let b = weights[0]
        guard x.rank >= 1, x.shape[x.rank - 1] == b.k else { throw KerfError.shapeMismatch("x \(x.shape) does not fit W [\(b.k), \(b.n)]") }
        let rows = x.count / max(b.k, 1), n = b.n
        let dtype = outputTable?.outputType ?? finalQuantization?.dtype ?? output?.dtype ?? .float
        var productShape = x.shape
        productShape[x.rank - 1] = n
        if productShape.count < biasRank {  // Add's broadcast with a float bias [1, ..., N]
            productShape = [Int](repeating: 1, count: biasRank - productShape.count) + productShape
        }
        if let outputTable {
            try outputTable.check(productShape)
            productShape = outputTable.outputShape(productShape)
        }
        let heads = dtype == .float ? headLayout(inputs, 10, keysTransposed: keysTransposed, productShape: productShape) : nil
        let residual = dtype == .float ? try tail?.residual(inputs, productShape: productShape) : nil
        let y = try Tensor(uninitialized: dtype, shape: heads?.1 ?? productShape)
        let yp = y.storage.pointer, element = dtype.byteSize
        withOptionalBuffer(columnOffsets) { known in
        int8GemmByRowBlocks(m: rows, a: x.storage.pointer, aSigned: xType == .int8, lda: b.k, aZeroPoint: xZero, b: b,
                            threads: threads, columnOffsets: known?.baseAddress) { acc, offsets, first, count, scratch in
            let block = yp + first * n * element
            if let heads {
                epilogue(acc, offsets: offsets, m: count, n: n, columnOffset: 0, into: UnsafeMutableRawPointer(scratch), rowStride: n, columnStride: 1)
                heads.0.place(scratch, first: first, count: count, into: yp.assumingMemoryBound(to: Float.self))
                return
            }
            guard let q = finalQuantization else {
                epilogue(acc, offsets: offsets, m: count, n: n, columnOffset: 0, into: block, rowStride: n, columnStride: 1)
                outputTable?.apply(block, count: count * n, into: block)
                if let residual {
                    tail!.apply(block.assumingMemoryBound(to: Float.self), first: first, count: count, n: n,
                                residual: residual.storage.pointer.assumingMemoryBound(to: Float.self), scratch: scratch)
                }
                return
            }
            epilogue(acc, offsets: offsets, m: count, n: n, columnOffset: 0, into: UnsafeMutableRawPointer(scratch), rowStride: n, columnStride: 1)
            if q.dtype == .int8 {
                quantize(scratch, count: count * n, scale: q.scale, zeroPoint: q.zero, lo: q.lo, hi: q.hi, into: block.assumingMemoryBound(to: Int8.self))
            } else {
                quantize(scratch, count: count * n, scale: q.scale, zeroPoint: q.zero, lo: q.lo, hi: q.hi, into: block.assumingMemoryBound(to: UInt8.self))
            }
        }
        }
        if let tail, residual == nil { return try tail.applyUnfused(y, inputs) }
        if heads == nil, let headFallback { return try headFallback.apply(y, inputs, 10) }
        return y
    }

    private func runConv(_ x: Tensor) throws -> Tensor {
        guard let window, x.rank == kernel.count + 2 else { throw KerfError.shapeMismatch("Conv x \(x.shape) does not fit kernel \(kernel)") }
        let batch = x.shape[0], channels = x.shape[channelsLast ? x.rank - 1 : 1], cg = channels / group, mg = weights[0].n, m = mg * group
        guard channels % group == 0, weights[0].k == cg * kernel.reduce(1, *) else {
            throw KerfError.shapeMismatch("Conv x \(x.shape)\(channelsLast ? " (channels-last)" : "") does not fit W with group \(group)")
        }
        let spatial = channelsLast ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        let (g, _) = try window.geometry(input: spatial, kernel: kernel)
        let shape = channelsLast ? [batch] + g.outputSize + [m] : [batch, m] + g.outputSize
        try checkedElementCount(shape, dtype: output?.dtype ?? .float, "Conv")
        let y = try Tensor(uninitialized: output?.dtype ?? .float, shape: shape)
        let oc = g.outputCount, ic = g.inputCount, width = weights[0].k
        if oc == 0 || batch == 0 { return y }
        // The batch channels-last: as given, or made so once (int8 and uint8 alike: only bytes move).
        let xp = x.storage.pointer.assumingMemoryBound(to: UInt8.self)
        let copy = channelsLast ? nil : UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, x.count))
        defer { copy?.deallocate() }
        if let copy {
            for n in 0..<batch { transposeToChannelsLast(xp + n * channels * ic, channels: channels, pixels: ic, into: copy + n * channels * ic) }
        }
        let nhwc = copy ?? xp
        // A 1x1, stride-1, unpadded Conv multiplies the channels-last image itself.
        let pointwise = g.kernelCount == 1 && g.strides.allSatisfy { $0 == 1 } && g.padsBegin.allSatisfy { $0 == 0 } && oc == ic
        let (tilesPerImage, workers) = convTiling(batch: batch, pixels: oc, macsPerImage: oc * width * m)
        let tileRows = (oc + tilesPerImage - 1) / tilesPerImage
        let rowsBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: pointwise ? 1 : workers * tileRows * width)
        let accBuffer = UnsafeMutablePointer<Int32>.allocate(capacity: workers * tileRows * mg)
        defer { rowsBuffer.deallocate(); accBuffer.deallocate() }
        let element = output?.dtype.byteSize ?? 4, yp = y.storage.pointer
        let gemmThreads = batch * tilesPerImage == 1 ? threads : 1
        let padding = UInt8(truncatingIfNeeded: xZero), signed = xType == .int8
        withOptionalBuffer(columnOffsets) { offsetBuffer in
        let offsets = offsetBuffer?.baseAddress
        parallelFor(batch * tilesPerImage, threads: workers) { worker, task in
            let n = task / tilesPerImage, first = task % tilesPerImage * tileRows, count = min(tileRows, oc - first)
            if count <= 0 { return }
            let image = nhwc + n * channels * ic
            let rows = rowsBuffer + worker * tileRows * width, acc = accBuffer + worker * tileRows * mg
            for gi in 0..<group {
                let a: UnsafeRawPointer, lda: Int
                if pointwise {
                    (a, lda) = (UnsafeRawPointer(image + first * channels + gi * cg), channels)
                } else {
                    im2rowChannelsLast(UnsafePointer(image + gi * cg), pixelStride: channels, channels: cg, geometry: g,
                                       padding: padding, first: first, count: count, rows: rows)
                    (a, lda) = (UnsafeRawPointer(rows), width)
                }
                int8Gemm(m: count, a: a, aSigned: signed, lda: lda, aZeroPoint: xZero, b: weights[gi], c: acc, ldc: mg,
                         threads: gemmThreads, correctingZeroPoints: offsets == nil)
                let groupOffsets = offsets.map { $0 + gi * mg }
                // acc is [pixels, channels]; y is NCHW (pixel stride 1, channel stride oc) or NHWC.
                if channelsLast {
                    let dst = yp + ((n * oc + first) * m + gi * mg) * element
                    epilogue(acc, offsets: groupOffsets, m: count, n: mg, columnOffset: gi * mg, into: dst, rowStride: m, columnStride: 1)
                } else {
                    let dst = yp + ((n * m + gi * mg) * oc + first) * element
                    epilogue(acc, offsets: groupOffsets, m: count, n: mg, columnOffset: gi * mg, into: dst, rowStride: 1, columnStride: oc)
                }
            }
        }
        }
        return y
    }

    /// How a Conv's images split into tasks: whole images when the batch can keep every thread
    /// busy, else up to `threads` tiles of output pixels per image. Small convolutions stay on one
    /// thread: waking a pool thread on a busy machine costs about as much as 500k multiply-adds
    /// (measured on the small ResNet of scripts/bench_int8.py at batch 1).
    private func convTiling(batch: Int, pixels: Int, macsPerImage: Int) -> (tilesPerImage: Int, workers: Int) {
        let minimumMACsPerTask = 500_000
        if threads <= 1 || batch * macsPerImage < 2 * minimumMACsPerTask { return (1, 1) }
        if batch >= threads { return (1, threads) }
        let tiles = max(1, min((threads + batch - 1) / batch, pixels / 16, macsPerImage / minimumMACsPerTask))
        return (tiles, min(threads, batch * tiles))
    }

    /// Writes acc [m, n] &+ offsets[j] (n int32, nil: none) of output channels columnOffset ..<
    /// columnOffset + n as floats or requantized.
    private func epilogue(_ acc: UnsafeMutablePointer<Int32>, offsets: UnsafePointer<Int32>? = nil, m: Int, n: Int, columnOffset: Int,
                          into y: UnsafeMutableRawPointer, rowStride: Int, columnStride: Int) {
        multipliers.withUnsafeBufferPointer { allScales in
            let scales = allScales.count == 1 ? allScales : UnsafeBufferPointer(rebasing: allScales[columnOffset..<(columnOffset + n)])
            if let output {
                // Left uncorrected (offsets given), the sums take the bias with the offsets in it.
                let bias = offsets != nil ? offsetBias : biasQ
                func write<T: FixedWidthInteger>(_: T.Type) {
                    withOptionalBuffer(bias) { all in
                        let bias = all.map { $0.count == 1 ? $0 : UnsafeBufferPointer(rebasing: $0[columnOffset..<(columnOffset + n)]) }
                        requantizeProduct(acc, m: m, n: n, ldAcc: n, bias: bias, multipliers: scales, zeroPoint: output.zero, lo: output.lo,
                                          hi: output.hi, into: y.assumingMemoryBound(to: T.self), rowStride: rowStride, columnStride: columnStride)
                    }
                }
                if output.dtype == .int8 { write(Int8.self) } else { write(UInt8.self) }
                return
            }
            let out = y.assumingMemoryBound(to: Float.self)
            if let biasF {
                biasF.withUnsafeBufferPointer { all in
                    let bias = all.count == 1 ? all : UnsafeBufferPointer(rebasing: all[columnOffset..<(columnOffset + n)])
                    dequantizeProduct(acc, m: m, n: n, ldAcc: n, offsets: offsets, scales: scales, bias: bias, into: out,
                                      rowStride: rowStride, columnStride: columnStride)
                }
            } else {
                dequantizeProduct(acc, m: m, n: n, ldAcc: n, offsets: offsets, scales: scales, bias: nil, into: out,
                                  rowStride: rowStride, columnStride: columnStride)
            }
            if activation != .none && columnStride == 1 {
                for i in 0..<m { activation.apply(out + i * rowStride, count: n) }
            } else if activation != .none {
                for i in 0..<m { for j in 0..<n { activation.apply(out + i * rowStride + j * columnStride, count: 1) } }
            }
        }
    }
}
