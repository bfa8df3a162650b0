import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

// Relu, LeakyRelu, Sigmoid, Tanh, Clip.

/// Applies a float function elementwise to float32/float64 (and half types via float32).
func unaryFloat(_ x: Tensor, _ f32: @escaping (Float) -> Float, _ f64: @escaping (Double) -> Double) throws -> Tensor {
    switch x.dtype {  // float32 and float64 without withFloat32's arrays
    case .float: return try mapNumeric(x, Float.self, f32)
    case .double: return try mapNumeric(x, Double.self, f64)
    default: break
    }
    return try withFloat32([x]) { inputs in
        let t = inputs[0]!
        switch t.dtype {
        case .float: return try [mapNumeric(t, Float.self, f32)]
        case .double: return try [mapNumeric(t, Double.self, f64)]
        default: throw KerfError.unsupported("dtype \(t.dtype) is not supported (float types only)")
        }
    }[0]
}

enum ActivationOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Relu"] = { _ in
            ClosureOperator { inputs in
                let x = try inputs.required(0)
                if x.dtype.isFloatingPoint {
                    return [try unaryFloat(x, { $0 > 0 ? $0 : ($0.isNaN ? $0 : 0) }, { $0 > 0 ? $0 : ($0.isNaN ? $0 : 0) })]
                }
                struct Body: NumericBody {
                    let x: Tensor
                    func run<T: NumericElement>(_: T.Type) throws -> Tensor { try mapNumeric(x, T.self) { Swift.max($0, T.zero) } }
                }
                return [try dispatchNumeric(x.dtype, Body(x: x))]
            }
        }
        for (name, negate) in [("Neg", true), ("Abs", false)] {
            r[name] = { _ in
                ClosureOperator { inputs in
                    try withFloat32(inputs) { ins in
                        struct Body: NumericBody {
                            let x: Tensor, negate: Bool
                            func run<T: NumericElement>(_: T.Type) throws -> Tensor {
                                try mapNumeric(x, T.self) { v in
                                    let flipped = T.sub(T.zero, v)
                                    return negate ? flipped : (v < T.zero ? flipped : v)
                                }
                            }
                        }
                        let x = try ins.required(0)
                        return [try dispatchNumeric(x.dtype, Body(x: x, negate: negate))]
                    }
                }
            }
        }
        r["LeakyRelu"] = { c in
            let alpha = try c.float("alpha", default: 0.01)
            return ClosureOperator { [try unaryFloat(try $0.required(0), { $0 >= 0 ? $0 : $0 * alpha }, { $0 >= 0 ? $0 : $0 * Double(alpha) })] }
        }
        r["Sigmoid"] = { _ in
            ClosureOperator { [try unaryFloat(try $0.required(0), sigmoid, { 1 / (1 + Glibc.exp(-$0)) })] }
        }
        r["Tanh"] = { _ in ClosureOperator { [try unaryFloat(try $0.required(0), { fastTanh($0) }, { Glibc.tanh($0) })] } }
        r["Clip"] = { c in
            // Before opset 11 the bounds are attributes; from 11 on they are optional inputs.
            let attrMin = try c.float("min", default: -Float.greatestFiniteMagnitude)
            let attrMax = try c.float("max", default: Float.greatestFiniteMagnitude)
            let useAttributes = c.opset < 11
            return ClosureOperator { inputs in
                _ = try inputs.required(0)
                return try withFloat32(inputs) { ins in
                    let x32 = ins[0]!
                    struct Body: NumericBody {
                        let x: Tensor, lo: Tensor?, hi: Tensor?, attrs: (Float, Float)?
                        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
                            var lower: T? = nil, upper: T? = nil
                            if let (a, b) = attrs {
                                lower = T(fromDouble: Double(a))
                                upper = T(fromDouble: Double(b))
                            }
                            if let lo, lo.count > 0 { lower = lo.withElements(as: T.self) { $0[0] } }
                            if let hi, hi.count > 0 { upper = hi.withElements(as: T.self) { $0[0] } }
                            return try mapNumeric(x, T.self) { v in
                                var r = v
                                if let l = lower, r < l { r = l }
                                if let u = upper, r > u { r = u }
                                return r
                            }
                        }
                    }
                    return [try dispatchNumeric(x32.dtype, Body(x: x32, lo: ins.optional(1) ?? nil, hi: ins.optional(2) ?? nil,
                                                               attrs: useAttributes ? (attrMin, attrMax) : nil))]
                }
            }
        }
    }
}

/// kerf.SiLU(x) = x · sigmoid(x), which the optimizer makes of Mul(x, Sigmoid(x)) (`fuseSiLU`).
enum SiLUOps {
    static let opType = "SiLU"

    static func register(_ r: inout [String: OperatorFactory]) {
        r["\(FusedQuantizedOps.domain):\(opType)"] = { _ in
            ClosureOperator { [try unaryFloat(try $0.required(0), { silu($0) }, { $0 / (1 + Glibc.exp(-$0)) })] }
        }
    }
}

@inline(__always)
func sigmoid(_ x: Float) -> Float {
    // Split by sign so exp never overflows.
    if x >= 0 { return 1 / (1 + expf(-x)) }
    let e = expf(x)
    return e / (1 + e)
}
