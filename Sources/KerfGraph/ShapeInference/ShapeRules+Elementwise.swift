import KerfCore

/// One-input operators whose outputs keep the input's shape.
extension ShapeRules {
    static let elementwise: [String: ShapeRule] = {
        var t = each([
            "Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Abs", "Gelu", "LeakyRelu",
            "HardSigmoid", "HardSwish", "Clip", "Sign", "Round", "Floor", "Ceil", "Reciprocal", "Sin", "Cos",
            "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Elu", "Selu", "Celu",
            "Softplus", "Softsign", "ThresholdedRelu", "Mish", "Shrink", "PRelu", "CumSum", "CumProd", "Trilu", "LRN",
            "BitwiseNot", "Swish", "RotaryEmbedding",
        ], sameAsInput)
        t.merge(each(["Identity", "Neg"], sameAsInputWithValue)) { a, _ in a }
        t.merge(each(["Not", "IsNaN", "IsInf"], boolOfInput)) { a, _ in a }
        t["Dropout"] = dropout
        t["Cast"] = cast
        t["BitCast"] = { c in c.set(0, dtype: c.dtypeAttribute("to"), shape: c.shape(0)) }
        t["CastLike"] = { c in
            c.set(0, dtype: c.dtype(1), shape: c.shape(0))
            if let to = c.dtype(1), to.isInteger { c.setValue(0, c.value(0)) }
        }
        return t
    }()

    /// Output 0 has input 0's dtype and shape.
    static func sameAsInput(_ c: inout ShapeRuleContext) { c.set(0, c.fact(0)) }

    /// As `sameAsInput`, carrying known integer contents (Identity copies them, Neg negates).
    static func sameAsInputWithValue(_ c: inout ShapeRuleContext) {
        c.set(0, c.fact(0))
        guard let v = c.value(0) else { return }
        if c.node.opType == "Neg" {
            c.setValue(0, KnownValue(shape: v.shape, elements: v.elements.map { d -> Dim in
                guard case .value(let x) = d, x != Int.min else { return .unknown }
                return .value(-x)
            }))
        } else {
            c.setValue(0, v)
        }
    }

    static func boolOfInput(_ c: inout ShapeRuleContext) { c.set(0, dtype: .bool, shape: c.shape(0)) }

    /// Output and optional bool mask keep the input's shape.
    static func dropout(_ c: inout ShapeRuleContext) {
        c.set(0, c.fact(0))
        c.set(1, dtype: .bool, shape: c.shape(0))
        c.setValue(0, c.value(0))
    }

    /// Dtype from `to`; integer contents carried when both types are integers.
    static func cast(_ c: inout ShapeRuleContext) {
        let to = c.dtypeAttribute("to")
        if c.int("to") != nil, to == nil { c.fail("'to' is not a dtype code") }
        c.set(0, dtype: to, shape: c.shape(0))
        if let to, to.isInteger, let from = c.dtype(0), from.isInteger || from == .bool { c.setValue(0, c.value(0)) }
    }
}

extension DType {
    /// True for the signed and unsigned integer types of at least 8 bits.
    var isInteger: Bool {
        switch self {
        case .int8, .uint8, .int16, .uint16, .int32, .uint32, .int64, .uint64: return true
        default: return false
        }
    }
}
