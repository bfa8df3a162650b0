import KerfCore

// IsNaN (opset 9, 13, 20) and IsInf (10, 20; detect_positive / detect_negative): bool
// tensors of the input's shape telling which elements are NaN or infinite. Inputs are float
// types: float32, float64, float16, bfloat16 and the float8 formats.

/// `test` applied to every element of a float tensor (read as float32 or float64) -> bool.
func classifyFloats(_ x: Tensor, _ op: String, _ test: @escaping (Double) -> Bool) throws -> Tensor {
    let source: Tensor
    switch x.dtype {
    case .float, .double: source = x
    case .float16, .bfloat16: source = try x.convertedToFloat32()
    case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz: source = try cast(x, to: .float)
    default: throw KerfError.unsupported("\(op) takes float tensors, got \(x.dtype)")
    }
    var out = try Tensor(uninitialized: .bool, shape: x.shape)
    switch source.dtype {
    case .float:
        source.withElements(as: Float.self) { src in
            out.withMutableElements(as: UInt8.self) { dst in for i in 0..<src.count { dst[i] = test(Double(src[i])) ? 1 : 0 } }
        }
    case .double:
        source.withElements(as: Double.self) { src in
            out.withMutableElements(as: UInt8.self) { dst in for i in 0..<src.count { dst[i] = test(src[i]) ? 1 : 0 } }
        }
    default:
        throw KerfError.internal("\(op) read \(source.dtype)")
    }
    return out
}

enum FloatClassOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["IsNaN"] = { _ in ClosureOperator { [try classifyFloats(try $0.required(0), "IsNaN") { $0.isNaN }] } }
        r["IsInf"] = { c in
            let positive = try c.int("detect_positive", default: 1) != 0
            let negative = try c.int("detect_negative", default: 1) != 0
            return ClosureOperator { inputs in
                [try classifyFloats(try inputs.required(0), "IsInf") { $0.isInfinite && ($0 > 0 ? positive : negative) }]
            }
        }
    }
}
