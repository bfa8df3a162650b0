import KerfCore
import KerfKernels

// QuantizeLinear and DequantizeLinear (opsets 10-25: per-tensor, per-axis, blocked; integer
// targets of 2 to 16 bits, int32 for dequantized biases, float8 / float4 targets through the
// Cast conversions), DynamicQuantizeLinear.

enum QuantizeOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["QuantizeLinear"] = { c in
            let params = try QuantizationAttributes(c)
            let saturate = try c.int("saturate", default: 1) != 0
            let outputCode = try c.int("output_dtype", default: 0)
            return ClosureOperator { inputs in
                let x = try inputs.required(0, "x"), scale = try inputs.required(1, "y_scale")
                let zeroPoint = inputs.optional(2) ?? nil
                var target = DType.uint8
                if let zeroPoint { target = zeroPoint.dtype } else if outputCode != 0, let t = DType(rawValue: Int32(outputCode)) { target = t }
                return [try quantizeLinear(x, scale: scale, zeroPoint: zeroPoint, to: target, params: params, saturate: saturate)]
            }
        }
        r["DequantizeLinear"] = { c in
            let params = try QuantizationAttributes(c)
            let outputCode = try c.int("output_dtype", default: 0)
            return ClosureOperator { inputs in
                let x = try inputs.required(0, "x"), scale = try inputs.required(1, "x_scale")
                let target = outputCode != 0 ? DType(rawValue: Int32(outputCode)) ?? scale.dtype : scale.dtype
                return [try dequantizeLinear(x, scale: scale, zeroPoint: inputs.optional(2) ?? nil, to: target, params: params)]
            }
        }
        r["DynamicQuantizeLinear"] = { _ in
            ClosureOperator { inputs in
                let x = try inputs.required(0, "x")
                guard x.dtype == .float else { throw KerfError.unsupported("DynamicQuantizeLinear takes float32, got \(x.dtype)") }
                var y = try Tensor(uninitialized: .uint8, shape: x.shape)
                let (scale, zeroPoint) = x.withElements(as: Float.self) { xs in
                    y.withMutableElements(as: UInt8.self) { ys in
                        let p = dynamicQuantizationParameters(xs.baseAddress!, count: xs.count)
                        quantize(xs.baseAddress!, count: xs.count, scale: p.scale, zeroPoint: Int32(p.zeroPoint), lo: 0, hi: 255,
                                 into: ys.baseAddress!)
                        return p
                    }
                }
                return [y, Tensor(scalar: scale), Tensor(scalar: zeroPoint)]
            }
        }
    }
}

/// The `axis` and `block_size` attributes of QuantizeLinear / DequantizeLinear.
struct QuantizationAttributes {
    var axis: Int
    var blockSize: Int

    init(axis: Int = 1, blockSize: Int = 0) {
        self.axis = axis
        self.blockSize = blockSize
    }

    init(_ c: OperatorContext) throws {
        axis = try c.int("axis", default: 1)
        blockSize = try c.int("block_size", default: 0)
        guard blockSize >= 0 else { throw KerfError.invalidModel("block_size must be >= 0") }
    }
}

/// How a scale (and zero point) of shape `scaleShape` spreads over x: x is viewed as
/// [outer, axisLength, inner] and element (o, d, i) uses the parameter at
/// o * outerStride + (d / block) * axisStride + i * innerStride.
struct QuantizationLayout {
    var outer = 1, axisLength = 1, inner = 1, block = 1
    var outerStride = 0, axisStride = 0, innerStride = 0

    init(x shape: [Int], scale scaleShape: [Int], params: QuantizationAttributes) throws {
        let count = scaleShape.reduce(1, *)
        inner = shape.reduce(1, *)
        if params.blockSize == 0 && count == 1 && scaleShape.count <= 1 { return }  // per tensor
        guard !shape.isEmpty else { throw KerfError.shapeMismatch("a scale of shape \(scaleShape) for a scalar input") }
        let axis = try normalizeAxis(params.axis, rank: shape.count)
        outer = shape[..<axis].reduce(1, *)
        axisLength = shape[axis]
        inner = shape[(axis + 1)...].reduce(1, *)
        if params.blockSize == 0 {
            guard scaleShape == [axisLength] else {
                throw KerfError.shapeMismatch("per-axis scale of shape \(scaleShape) does not match axis \(axis) of \(shape)")
            }
            axisStride = 1
            return
        }
        var expected = shape
        expected[axis] = (axisLength + params.blockSize - 1) / params.blockSize
        guard scaleShape == expected else {
            throw KerfError.shapeMismatch("blocked scale of shape \(scaleShape) does not fit \(shape) (axis \(axis), block \(params.blockSize))")
        }
        block = params.blockSize
        axisStride = inner
        outerStride = expected[axis] * inner
        innerStride = 1
    }

    /// Calls body(start, count, parameterIndex) for each run of x sharing one parameter.
    func forEachRun(_ body: (_ start: Int, _ count: Int, _ parameter: Int) -> Void) {
        for o in 0..<outer {
            for d in 0..<axisLength {
                let base = (o * axisLength + d) * inner, p = o * outerStride + (d / block) * axisStride
                if innerStride == 0 { body(base, inner, p) } else { for i in 0..<inner { body(base + i, 1, p + i) } }
            }
        }
    }
}

/// The representable range of an integer quantization target (4- and 2-bit types included).
func quantizedRange(_ dtype: DType) -> (lo: Int32, hi: Int32)? {
    switch dtype {
    case .uint8: return (0, 255)
    case .int8: return (-128, 127)
    case .uint16: return (0, 65535)
    case .int16: return (-32768, 32767)
    case .uint4: return (0, 15)
    case .int4: return (-8, 7)
    case .uint2: return (0, 3)
    case .int2: return (-2, 1)
    default: return nil
    }
}

/// Float32 (x - zeroPoint) * scale of an int8 or uint8 tensor x.
func dequantizedBytes(_ x: Tensor, scale: Float, zeroPoint: Int32) throws -> Tensor {
    let y = try Tensor(uninitialized: .float, shape: x.shape)
    let out = y.storage.pointer.assumingMemoryBound(to: Float.self)
    if x.dtype == .int8 {
        dequantize(x.storage.pointer.assumingMemoryBound(to: Int8.self), count: x.count, scale: scale, zeroPoint: zeroPoint, into: out)
    } else {
        dequantize(x.storage.pointer.assumingMemoryBound(to: UInt8.self), count: x.count, scale: scale, zeroPoint: zeroPoint, into: out)
    }
    return y
}

/// The scale and zero point of a per-tensor layout with a float32 scale and an 8-bit (or no)
/// zero point; nil otherwise.
private func perTensorParameters(_ layout: QuantizationLayout, _ scale: Tensor, _ zeroPoint: Tensor?) -> (Float, Int32)? {
    guard layout.outer == 1, layout.axisLength == 1, layout.block == 1, scale.dtype == .float, scale.count == 1 else { return nil }
    let s = scale.storage.pointer.load(as: Float.self)
    guard let zeroPoint else { return (s, 0) }
    switch zeroPoint.dtype {
    case .uint8: return (s, Int32(zeroPoint.storage.pointer.load(as: UInt8.self)))
    case .int8: return (s, Int32(zeroPoint.storage.pointer.load(as: Int8.self)))
    default: return nil
    }
}

/// The elements of a float tensor (any float dtype, or int32) as float32.
private func floatValues(_ t: Tensor) throws -> Tensor {
    t.dtype == .float ? t : try cast(t, to: .float)
}

/// QuantizeLinear: y = saturate(round(x / scale) + zeroPoint) in `target` (round half to even).
/// Float8 / float4 targets get x / scale + zeroPoint converted as Cast would (`saturate`).
func quantizeLinear(_ x: Tensor, scale: Tensor, zeroPoint: Tensor?, to target: DType, params: QuantizationAttributes,
                    saturate: Bool = true) throws -> Tensor {
    if let zeroPoint, zeroPoint.shape.reduce(1, *) != scale.count {
        throw KerfError.shapeMismatch("zero point of shape \(zeroPoint.shape) and scale of shape \(scale.shape) differ")
    }
    let layout = try QuantizationLayout(x: x.shape, scale: scale.shape, params: params)
    if x.dtype == .float, target == .uint8 || target == .int8, let (s, z) = perTensorParameters(layout, scale, zeroPoint) {
        // The common case without per-parameter arrays.
        let range = quantizedRange(target)!
        let y = try Tensor(uninitialized: target, shape: x.shape)
        let src = x.storage.pointer.assumingMemoryBound(to: Float.self)
        if target == .int8 {
            quantize(src, count: x.count, scale: s, zeroPoint: z, lo: range.lo, hi: range.hi, into: y.storage.pointer.assumingMemoryBound(to: Int8.self))
        } else {
            quantize(src, count: x.count, scale: s, zeroPoint: z, lo: range.lo, hi: range.hi, into: y.storage.pointer.assumingMemoryBound(to: UInt8.self))
        }
        return y
    }
    let xs = try floatValues(x), scales = try floatValues(scale).array(of: Float.self)
    guard let range = quantizedRange(target) else {
        guard isStorageOnlyType(target) else { throw KerfError.unsupported("QuantizeLinear to \(target) is not supported") }
        // Float targets: divide, add the (decoded) zero point, convert with the format's rounding.
        let zeros = try zeroPoint.map { try cast($0, to: .float).array(of: Float.self) } ?? [Float](repeating: 0, count: scales.count)
        var v = try Tensor(uninitialized: .float, shape: x.shape)
        xs.withElements(as: Float.self) { src in
            v.withMutableElements(as: Float.self) { dst in
                layout.forEachRun { start, count, p in for i in start..<(start + count) { dst[i] = src[i] / scales[p] + zeros[p] } }
            }
        }
        return try cast(v, to: target, saturate: saturate)
    }
    let zeros = try zeroPoint.map { try cast($0, to: .int32).array(of: Int32.self) } ?? [Int32](repeating: 0, count: scales.count)
    var y = try Tensor(uninitialized: target, shape: x.shape)
    func fill<T: FixedWidthInteger>(_: T.Type) {
        xs.withElements(as: Float.self) { src in
            y.withMutableElements(as: T.self) { dst in
                layout.forEachRun { start, count, p in
                    quantize(src.baseAddress! + start, count: count, scale: scales[p], zeroPoint: zeros[p], lo: range.lo, hi: range.hi,
                             into: dst.baseAddress! + start)
                }
            }
        }
    }
    switch target {
    case .uint16: fill(UInt16.self)
    case .int16: fill(Int16.self)
    case .int8, .int4, .int2: fill(Int8.self)
    default: fill(UInt8.self)
    }
    return y
}

/// DequantizeLinear: y = (x - zeroPoint) * scale, in `target` (float32, float16 or bfloat16).
func dequantizeLinear(_ x: Tensor, scale: Tensor, zeroPoint: Tensor?, to target: DType, params: QuantizationAttributes) throws -> Tensor {
    if let zeroPoint {
        guard zeroPoint.dtype == x.dtype else { throw KerfError.shapeMismatch("zero point is \(zeroPoint.dtype), x is \(x.dtype)") }
        guard zeroPoint.shape.reduce(1, *) == scale.count else {
            throw KerfError.shapeMismatch("zero point of shape \(zeroPoint.shape) and scale of shape \(scale.shape) differ")
        }
    }
    guard target.isFloatingPoint, target != .double else { throw KerfError.unsupported("DequantizeLinear to \(target) is not supported") }
    let layout = try QuantizationLayout(x: x.shape, scale: scale.shape, params: params)
    if target == .float, x.dtype == .uint8 || x.dtype == .int8, let (s, z) = perTensorParameters(layout, scale, zeroPoint) {
        return try dequantizedBytes(x, scale: s, zeroPoint: z)  // the common case without per-parameter arrays
    }
    let scales = try floatValues(scale).array(of: Float.self)
    var y = try Tensor(uninitialized: .float, shape: x.shape)
    if quantizedRange(x.dtype) != nil || x.dtype == .int32 {
        let zeros = try zeroPoint.map { try cast($0, to: .int32).array(of: Int32.self) } ?? [Int32](repeating: 0, count: scales.count)
        func read<T: FixedWidthInteger>(_ source: Tensor, _: T.Type) {
            source.withElements(as: T.self) { src in
                y.withMutableElements(as: Float.self) { dst in
                    layout.forEachRun { start, count, p in
                        dequantize(src.baseAddress! + start, count: count, scale: scales[p], zeroPoint: zeros[p], into: dst.baseAddress! + start)
                    }
                }
            }
        }
        switch x.dtype {
        case .uint8: read(x, UInt8.self)
        case .int8: read(x, Int8.self)
        case .uint16: read(x, UInt16.self)
        case .int16: read(x, Int16.self)
        default: read(try cast(x, to: .int32), Int32.self)  // int32 and the 4- / 2-bit types
        }
    } else {
        guard isStorageOnlyType(x.dtype) else { throw KerfError.unsupported("DequantizeLinear of \(x.dtype) is not supported") }
        let values = try cast(x, to: .float)
        let zeros = try zeroPoint.map { try cast($0, to: .float).array(of: Float.self) } ?? [Float](repeating: 0, count: scales.count)
        values.withElements(as: Float.self) { src in
            y.withMutableElements(as: Float.self) { dst in
                layout.forEachRun { start, count, p in for i in start..<(start + count) { dst[i] = (src[i] - zeros[p]) * scales[p] } }
            }
        }
    }
    return try target == .float ? y : y.convertedFromFloat32(to: target)
}
