import KerfCore
import KerfCKernels
import KerfKernels

// Elementwise int8 operators the optimizer fuses DequantizeLinear -> op -> QuantizeLinear chains
// into (domain "kerf", see Optimizer/QuantizedFusion.swift). All scales and zero points are
// per-tensor constants; inputs and output share one 8-bit type (uint8 or int8).
//
//  kerf.QuantizedAdd(A, a_scale, a_zp, B, b_scale, b_zp, y_scale, y_zp) -> Y, optionally with a
//      fused Relu (FusedAttributes): ONNX Runtime's QLinearAdd — y = saturate(round(a_scale / y_scale
//      * (A - a_zp) + b_scale / y_scale * (B - b_zp)) + y_zp), half to even; with Relu the result
//      is at least y_zp. A and B broadcast as Add does.
//  kerf.QuantizedTable(X, table uint8 [256]) -> Y, attribute to (Y's 8-bit type): Y = table[X]
//      (X's bytes as uint8): what DequantizeLinear -> elementwise ops -> QuantizeLinear give
//      each of the 256 values, computed by those operators when the graph is optimized.
//  kerf.QuantizedChannelTable(X, table uint8 [C, 256][, x_scale, x_zp, k, shift, y_scale, y_zp])
//      -> Y: the same with one table per channel of X's last axis (ops whose constants are
//      vectors along it: a bias, a scale); with the optional inputs the table is that of
//      QuantizeLinear(DequantizeLinear(X) * k[c] + shift[c]), computed so where it is exact.
//  kerf.QuantizedChannelLookup(X, x_scale, x_zp, bn_scale, bn_B, bn_mean, bn_var, y_scale, y_zp)
//      -> Y, attribute epsilon, optional fused Relu: QuantizeLinear of an inference
//      BatchNormalization (and Relu) of DequantizeLinear of X [N, C, ...] (channels_last = 1:
//      [N, ..., C]), as one table of the 256 input values per channel.
//  kerf.QuantizedGlobalAveragePool(X, x_scale, x_zp, y_scale, y_zp) -> Y [N, C, 1, ...]: ONNX
//      Runtime's QLinearGlobalAveragePool — the int32 sum of each plane, requantized with
//      x_scale / (y_scale * plane size).

extension FusedQuantizedOps {
    static func registerElementwise(_ r: inout [String: OperatorFactory]) {
        r["\(domain):QuantizedAdd"] = { c in try QuantizedAdd(c) }
        r["\(domain):QuantizedGlobalAveragePool"] = { c in try QuantizedGlobalAveragePool(c) }
        r["\(domain):QuantizedTable"] = { c in try QuantizedTable(c, perChannel: false) }
        r["\(domain):QuantizedChannelTable"] = { c in try QuantizedTable(c, perChannel: true) }
        r["\(domain):QuantizedChannelLookup"] = { c in try QuantizedChannelLookup(c) }
    }
}

/// A per-tensor scale and zero point given as constant inputs `index` and `index + 1`.
struct QuantizationParameters {
    let scale: Float
    let zero: Int32
    let dtype: DType

    init(_ c: OperatorContext, _ index: Int, _ what: String) throws {
        try self.init(c, scale: try c.requiredConstant(index, "\(what) scale"), zero: try c.requiredConstant(index + 1, "\(what) zero point"), what)
    }

    /// The same from the constants `q` names.
    init(_ c: OperatorContext, _ q: QuantizedEpilogue.Quantization, _ what: String) throws {
        try self.init(c, scale: try c.requiredConstant(named: q.scale, "\(what) scale"), zero: try c.requiredConstant(named: q.zero, "\(what) zero point"), what)
    }

    private init(_ c: OperatorContext, scale s: Tensor, zero z: Tensor, _ what: String) throws {
        scale = try floatScalars(s)[0]
        guard z.dtype == .uint8 || z.dtype == .int8, z.count == 1 else {
            throw KerfError.invalidModel("\(c.node.label): \(what) zero point must be one uint8 or int8")
        }
        zero = try integerValues(z)[0]
        dtype = z.dtype
    }
}

final class QuantizedTable: Operator {
    /// Counts this operator's runs in tests (nil otherwise).
    private let probe: RuntimeProbe?
    let table: ByteTable

    init(_ c: OperatorContext, perChannel: Bool) throws {
        probe = c.options.probe
        table = try ByteTable(try QuantizedEpilogue.Table(tableNode: c.node), c)
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try inputs.required(0, "X")
        guard x.dtype == .uint8 || x.dtype == .int8 else { throw KerfError.shapeMismatch("X must be uint8 or int8, got \(x.dtype)") }
        try table.check(x.shape)
        probe?.countFusedQuantizedRun()
        let out = try Tensor(uninitialized: table.outputType, shape: table.outputShape(x.shape))
        table.apply(x.storage.pointer, count: x.count, into: out.storage.pointer)
        return [out]
    }
}

final class QuantizedChannelLookup: Operator {
    /// Counts this operator's runs in tests (nil otherwise).
    private let probe: RuntimeProbe?
    /// table[c * 256 + byte]: the output byte of channel c for each input byte (as UInt8).
    let table: [UInt8]
    let channels: Int
    let channelsLast: Bool
    let inputType: DType, outputType: DType

    init(_ c: OperatorContext) throws {
        probe = c.options.probe
        let x = try QuantizationParameters(c, 1, "X"), y = try QuantizationParameters(c, 7, "Y")
        let activation = try c.fusedActivation()
        guard activation == .none || activation == .relu else {
            throw KerfError.invalidModel("\(c.node.label): only Relu can sit inside a quantized channel lookup")
        }
        channelsLast = try c.int("channels_last", default: 0) != 0
        let parameters = try (3...6).map { try c.requiredConstant($0, "BatchNormalization parameter") }
        let channels = parameters[0].count
        self.channels = channels
        guard channels > 0, parameters.allSatisfy({ $0.count == channels }) else {
            throw KerfError.invalidModel("\(c.node.label): BatchNormalization parameters of unequal or zero length")
        }
        // Every input value of every channel through DequantizeLinear, BatchNormalization, Relu
        // and QuantizeLinear's own kernels (elementwise, so each value gets what it gets in a run).
        let all = try Tensor(uninitialized: x.dtype, shape: [1, channels, 256])
        for i in 0..<(channels * 256) { all.storage.pointer.storeBytes(of: UInt8(truncatingIfNeeded: i), toByteOffset: i, as: UInt8.self) }
        let real = try dequantizeLinear(all, scale: try c.requiredConstant(1, "x_scale"), zeroPoint: try c.requiredConstant(2, "x_zp"),
                                        to: .float, params: QuantizationAttributes())
        var normalized = try batchNorm(real, scale: parameters[0], bias: parameters[1], mean: parameters[2], variance: parameters[3],
                                       epsilon: try c.float("epsilon", default: 1e-5), momentum: 0.9, training: false)[0]
        if activation == .relu { normalized.withMutableElements(as: Float.self) { for i in $0.indices { $0[i] = max($0[i], 0) } } }
        let q = try quantizeLinear(normalized, scale: try c.requiredConstant(7, "y_scale"), zeroPoint: try c.requiredConstant(8, "y_zp"),
                                   to: y.dtype, params: QuantizationAttributes())
        table = q.array(of: UInt8.self)
        (inputType, outputType) = (x.dtype, y.dtype)
        let (k, shift) = batchNormCoefficients(scale: parameters[0].array(of: Float.self), bias: parameters[1].array(of: Float.self),
                                               mean: parameters[2].array(of: Float.self), variance: parameters[3].array(of: Float.self),
                                               epsilon: try c.float("epsilon", default: 1e-5))
        let range = quantizedRange(y.dtype)!
        let affine = ChannelAffine(signed: x.dtype == .int8, xZero: x.zero, xScale: x.scale, k: k, shift: shift, relu: activation == .relu,
                                   yScale: y.scale, yZero: y.zero, lo: range.lo, hi: range.hi)
        // The vector arithmetic runs channels-last images only where it gives the table's bytes.
        arithmetic = channelsLast && cpuHasAVX512BW && y.scale.isNormal && (1 / y.scale).isNormal && affine.reproduces(table, channels: channels) ? affine : nil
    }

    /// The table's computation in sixteen lanes (KerfCKernels/quantize_avx512.c), for channels-last runs.
    private let arithmetic: ChannelAffine?

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try inputs.required(0, "X")
        guard x.dtype == inputType else { throw KerfError.shapeMismatch("X must be \(inputType), got \(x.dtype)") }
        guard x.rank >= 2, x.shape[channelsLast ? x.rank - 1 : 1] == channels else {
            throw KerfError.shapeMismatch("X of shape \(x.shape) does not have \(channels) channels\(channelsLast ? " last" : "")")
        }
        probe?.countFusedQuantizedRun()
        let out = try Tensor(uninitialized: outputType, shape: x.shape)
        if let arithmetic {
            arithmetic.apply(x.storage.pointer, pixels: x.count / channels, channels: channels, into: out.storage.pointer)
            return [out]
        }
        let source = x.storage.pointer.assumingMemoryBound(to: UInt8.self)
        let target = out.storage.pointer.assumingMemoryBound(to: UInt8.self)
        table.withUnsafeBufferPointer { t in
            if channelsLast {
                for p in 0..<(x.count / channels) {
                    let base = p * channels
                    for ch in 0..<channels { target[base + ch] = t[ch &* 256 &+ Int(source[base + ch])] }
                }
            } else {
                let plane = x.shape[2...].reduce(1, *)
                for row in 0..<(x.shape[0] * channels) {
                    let base = row * plane, ch = row % channels
                    let channelTable = t.baseAddress! + ch * 256
                    for i in base..<(base + plane) { target[i] = channelTable[Int(source[i])] }
                }
            }
        }
        return [out]
    }
}

/// kerf_channel_affine_bytes_avx512's parameters: DequantizeLinear, BatchNormalization as
/// x k[c] + shift[c], Relu and QuantizeLinear on channels-last bytes.
struct ChannelAffine {
    let signed: Bool, xZero: Int32, xScale: Float, k: [Float], shift: [Float], relu: Bool
    let yScale: Float, yZero: Int32, lo: Int32, hi: Int32

    func apply(_ x: UnsafeRawPointer, pixels: Int, channels: Int, into y: UnsafeMutableRawPointer) {
        k.withUnsafeBufferPointer { kp in
            shift.withUnsafeBufferPointer { sp in
                kerf_channel_affine_bytes_avx512(x, pixels, channels, signed ? 1 : 0, xZero, xScale, kp.baseAddress!, sp.baseAddress!,
                                                 relu ? 1 : 0, yScale, yZero, lo, hi, y)
            }
        }
    }

    /// True when every input byte of every channel gives the byte of `table` [channels, 256].
    func reproduces(_ table: [UInt8], channels: Int) -> Bool {
        // 256 pixels: pixel v holds byte v in every channel.
        let image = (0..<(256 * channels)).map { UInt8(truncatingIfNeeded: $0 / channels) }
        var out = [UInt8](repeating: 0, count: image.count)
        image.withUnsafeBytes { src in out.withUnsafeMutableBytes { apply(src.baseAddress!, pixels: 256, channels: channels, into: $0.baseAddress!) } }
        return (0..<image.count).allSatisfy { i in out[i] == table[(i % channels) * 256 + i / channels] }
    }
}

final class QuantizedAdd: Operator {
    /// Counts this operator's runs in tests (nil otherwise).
    private let probe: RuntimeProbe?
    let a: QuantizationParameters, b: QuantizationParameters, y: QuantizationParameters
    let lo: Int32, hi: Int32

    init(_ c: OperatorContext) throws {
        probe = c.options.probe
        a = try QuantizationParameters(c, 1, "A")
        b = try QuantizationParameters(c, 4, "B")
        y = try QuantizationParameters(c, 6, "Y")
        guard a.dtype == y.dtype, b.dtype == y.dtype, let (low, hi) = quantizedRange(y.dtype) else {
            throw KerfError.invalidModel("\(c.node.label): A, B and Y must share one 8-bit type")
        }
        var lo = low
        switch try c.fusedActivation() {
        case .none: break
        case .relu: lo = max(lo, y.zero)
        default: throw KerfError.invalidModel("\(c.node.label): only Relu can follow a quantized Add")
        }
        (self.lo, self.hi) = (lo, hi)
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x0 = try inputs.required(0, "A"), x1 = try inputs.required(3, "B")
        guard x0.dtype == y.dtype, x1.dtype == y.dtype else { throw KerfError.shapeMismatch("A and B must be \(y.dtype)") }
        probe?.countFusedQuantizedRun()
        let aRatio = a.scale / y.scale, bRatio = b.scale / y.scale
        guard x0.shape == x1.shape else { return [try broadcasting(x0, x1, aRatio: aRatio, bRatio: bRatio)] }
        let out = try Tensor(uninitialized: y.dtype, shape: x0.shape)
        func add<T: FixedWidthInteger>(_: T.Type) {
            quantizedAdd(x0.storage.pointer.assumingMemoryBound(to: T.self), aRatio: aRatio, aZero: a.zero,
                         x1.storage.pointer.assumingMemoryBound(to: T.self), bRatio: bRatio, bZero: b.zero, count: out.count,
                         yZero: y.zero, lo: lo, hi: hi, into: out.storage.pointer.assumingMemoryBound(to: T.self))
        }
        if y.dtype == .int8 { add(Int8.self) } else { add(UInt8.self) }
        return [out]
    }

    /// Operands of different shapes: both scaled to y's units in float, added with broadcasting,
    /// then rounded — the same arithmetic as the same-shape path.
    private func broadcasting(_ x0: Tensor, _ x1: Tensor, aRatio: Float, bRatio: Float) throws -> Tensor {
        func scaled(_ t: Tensor, _ ratio: Float, _ zero: Int32) throws -> Tensor { try dequantizedBytes(t, scale: ratio, zeroPoint: zero) }
        let sum = try arithmetic(.add, scaled(x0, aRatio, a.zero), scaled(x1, bRatio, b.zero))
        let out = try Tensor(uninitialized: y.dtype, shape: sum.shape)
        let sp = sum.storage.pointer.assumingMemoryBound(to: Float.self)
        if y.dtype == .int8 {
            quantize(sp, count: sum.count, scale: 1, zeroPoint: y.zero, lo: lo, hi: hi, into: out.storage.pointer.assumingMemoryBound(to: Int8.self))
        } else {
            quantize(sp, count: sum.count, scale: 1, zeroPoint: y.zero, lo: lo, hi: hi, into: out.storage.pointer.assumingMemoryBound(to: UInt8.self))
        }
        return out
    }
}

final class QuantizedGlobalAveragePool: Operator {
    /// Counts this operator's runs in tests (nil otherwise).
    private let probe: RuntimeProbe?
    let x: QuantizationParameters, y: QuantizationParameters

    init(_ c: OperatorContext) throws {
        probe = c.options.probe
        x = try QuantizationParameters(c, 1, "X")
        y = try QuantizationParameters(c, 3, "Y")
        guard x.dtype == y.dtype else { throw KerfError.invalidModel("\(c.node.label): X and Y must share one 8-bit type") }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let t = try inputs.required(0, "X")
        guard t.dtype == x.dtype, t.rank >= 3 else { throw KerfError.shapeMismatch("X must be \(x.dtype) of rank >= 3, got \(t.shape)") }
        probe?.countFusedQuantizedRun()
        let planes = t.shape[0] * t.shape[1], planeSize = t.shape[2...].reduce(1, *)
        let out = try Tensor(uninitialized: y.dtype, shape: Array(t.shape[..<2]) + [Int](repeating: 1, count: t.rank - 2))
        guard let (lo, hi) = quantizedRange(y.dtype) else { throw KerfError.internal("no range for \(y.dtype)") }
        let multiplier = x.scale / (y.scale * Float(max(planeSize, 1)))
        func pool<T: FixedWidthInteger>(_: T.Type) {
            quantizedPlaneMeans(t.storage.pointer.assumingMemoryBound(to: T.self), planes: planes, planeSize: planeSize, xZero: x.zero,
                                multiplier: multiplier, yZero: y.zero, lo: lo, hi: hi, into: out.storage.pointer.assumingMemoryBound(to: T.self))
        }
        if y.dtype == .int8 { pool(Int8.self) } else { pool(UInt8.self) }
        return [out]
    }
}
