import KerfCore
import KerfKernels

/// The epilogue of kerf.QuantizedMatMul and kerf.QuantizedConv (`QuantizedEpilogue`) made ready
/// to run at operator construction: constants read, x_scale · w_scale (/ y_scale) folded into
/// one multiplier per output channel, a fused Relu or Clip folded into the requantization's
/// bounds, the zero-point correction folded into the int32 bias where it is one int32 per column.
/// Both products turn their sums into the output with `writeSums`; a MatMul's output then goes
/// through the remaining stages (quantization of a float result, table, head layout, residual).
struct ProductEpilogue {
    /// A requantized output: dtype, zero point, range after a fused activation.
    struct Requantization {
        let dtype: DType, zero: Int32, lo: Int32, hi: Int32
    }

    /// The float output (with float bias and activation) quantized as QuantizeLinear does.
    struct FloatQuantization {
        let dtype: DType, scale: Float, zero: Int32, lo: Int32, hi: Int32
    }

    /// x_scale * w_scale[j] (float output) or that / y_scale (requantized), one per output channel.
    let multipliers: [Float]
    let biasQ: [Int32]?
    /// The float bias per output channel: the int32 bias times its scales, or the float bias.
    let biasF: [Float]?
    /// The rank of the float bias's constant when above 1 (its dims are 1 but the last): the
    /// output has at least that rank.
    let biasRank: Int
    let requantization: Requantization?
    /// The float output quantized (`QuantizedEpilogue.quantizesFloat`).
    let floatQuantization: FloatQuantization?
    let activation: Activation
    /// The zero-point correction per output channel (see `PackedInt8Weights.columnOffsets`),
    /// nil where it needs A's rows.
    let columnOffsets: [Int32]?
    /// biasQ (or 0) &+ columnOffsets, per output channel.
    let offsetBias: [Int32]?
    /// MatMul only: the float output in head layout.
    let heads: ProductHeads?
    /// MatMul only: a residual and LayerNorm finished in the float epilogue.
    let tail: ProductTail?
    /// MatMul only: the byte table applied to the requantized output.
    let table: ByteTable?

    /// `weights`: one packed weight per group, their columns the output channels in order.
    init(_ e: QuantizedEpilogue, _ c: OperatorContext, conv: Bool, xScale: Float, xZero: Int32, xType: DType, wScales: [Float],
         weights: [PackedInt8Weights]) throws {
        let label = c.node.label
        if conv && (e.heads != nil || e.residual != nil || e.table != nil) {
            throw KerfError.invalidModel("\(label): a Conv's epilogue has no head layout, residual or table")
        }
        heads = try ProductHeads(e.heads, c)
        tail = try ProductTail(e.residual, c, n: weights[0].n)
        table = try e.table.map { try ByteTable($0, c) }
        let outputs = weights.count * weights[0].n
        guard wScales.count == 1 || wScales.count == outputs else { throw KerfError.invalidModel("\(label): w scale count") }
        var scales = wScales.map { xScale * $0 }
        var biasQ: [Int32]?, biasF: [Float]?, biasRank = 0
        switch e.bias {
        case .integer(let values, let scale)?:
            let q = try integerValues(try c.requiredConstant(named: values, "bias"))
            let biasScales = try floatScalars(try c.requiredConstant(named: scale, "bias scale"))
            biasQ = q
            biasF = q.indices.map { Float(q[$0]) * biasScales[biasScales.count == 1 ? 0 : $0] }
        case .float(let name, let rank)?:
            biasF = try floatScalars(try c.requiredConstant(named: name, "float bias"))
            guard biasF!.count == outputs else { throw KerfError.invalidModel("\(label): float bias count") }
            biasRank = rank
        case nil: break
        }
        self.biasQ = biasQ
        self.biasRank = biasRank
        activation = e.activation
        if let y = e.quantization, e.quantizesFloat {
            let yScaleTensor = try c.requiredConstant(named: y.scale, "y scale"), yZeroTensor = try c.requiredConstant(named: y.zero, "y zero point")
            guard let (lo, hi) = quantizedRange(yZeroTensor.dtype) else { throw KerfError.invalidModel("\(label): output type") }
            floatQuantization = FloatQuantization(dtype: yZeroTensor.dtype, scale: try floatScalars(yScaleTensor)[0], zero: try integerValues(yZeroTensor)[0],
                                                  lo: lo, hi: hi)
            requantization = nil
        } else if let y = e.quantization {
            floatQuantization = nil
            let yScale = try floatScalars(try c.requiredConstant(named: y.scale, "y scale"))[0]
            let yZeroTensor = try c.requiredConstant(named: y.zero, "y zero point")
            let zero = try integerValues(yZeroTensor)[0]
            guard var (lo, hi) = quantizedRange(yZeroTensor.dtype) else { throw KerfError.invalidModel("\(label): output type") }
            func q(_ v: Float) -> Int32 { Int32(clamping: Int64((v / yScale).rounded(.toNearestOrEven)) + Int64(zero)) }
            switch activation {
            case .none: break
            case .relu: lo = max(lo, zero)
            case .clip(let a, let b):
                if a.isFinite { lo = max(lo, q(a)) }
                if b.isFinite { hi = min(hi, q(b)) }
            default: throw KerfError.invalidModel("\(label): activation cannot be requantized")
            }
            requantization = Requantization(dtype: yZeroTensor.dtype, zero: zero, lo: lo, hi: hi)
            scales = scales.map { $0 / yScale }
        } else {
            floatQuantization = nil
            requantization = nil
        }
        // One per output channel: the epilogue's vector kernels read them per column.
        multipliers = scales.count == outputs ? scales : [Float](repeating: scales[0], count: outputs)
        self.biasF = biasF.map { $0.count == outputs ? $0 : [Float](repeating: $0[0], count: outputs) }
        // x's zero point is a constant: where the correction for it is one int32 per column, it
        // joins the epilogue (the int32 bias, for requantized outputs) instead of a pass of its own.
        let signed = xType == .int8
        let offsets = weights.map { $0.columnOffsets(aZeroPoint: xZero, aSigned: signed) }
        let allOffsets = offsets.allSatisfy { $0 != nil } ? offsets.flatMap { $0! } : nil
        columnOffsets = allOffsets
        offsetBias = allOffsets.map { o in o.indices.map { j in (biasQ.map { $0[$0.count == 1 ? 0 : j] } ?? 0) &+ o[j] } }
    }

    /// The output's element type.
    var outputType: DType { table?.outputType ?? floatQuantization?.dtype ?? requantization?.dtype ?? .float }

    /// Writes acc [m, n] &+ offsets[j] (n int32, nil: none) of output channels columnOffset ..<
    /// columnOffset + n as floats (bias, activation) or requantized; element (i, j) goes to
    /// y[i * rowStride + j * columnStride].
    func writeSums(_ acc: UnsafeMutablePointer<Int32>, offsets: UnsafePointer<Int32>? = nil, m: Int, n: Int, columnOffset: Int,
                   into y: UnsafeMutableRawPointer, rowStride: Int, columnStride: Int) {
        multipliers.withUnsafeBufferPointer { allScales in
            let scales = allScales.count == 1 ? allScales : UnsafeBufferPointer(rebasing: allScales[columnOffset..<(columnOffset + n)])
            if let output = requantization {
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

    /// The float result `block` (count * n values) quantized into `y` as QuantizeLinear does.
    func quantizeFloat(_ q: FloatQuantization, _ block: UnsafeMutablePointer<Float>, count: Int, into y: UnsafeMutableRawPointer) {
        if q.dtype == .int8 {
            quantize(block, count: count, scale: q.scale, zeroPoint: q.zero, lo: q.lo, hi: q.hi, into: y.assumingMemoryBound(to: Int8.self))
        } else {
            quantize(block, count: count, scale: q.scale, zeroPoint: q.zero, lo: q.lo, hi: q.hi, into: y.assumingMemoryBound(to: UInt8.self))
        }
    }
}
