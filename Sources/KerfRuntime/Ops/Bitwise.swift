import KerfCore
import KerfKernels

// BitShift (opset 11; signed types from opset 28), BitwiseAnd, BitwiseOr, BitwiseXor,
// BitwiseNot (opset 18): integer tensors of one dtype, binary ops with ONNX broadcasting.

/// A computation generic over an integer element type, chosen by `dispatchInteger`.
protocol IntegerBody {
    associatedtype Result
    func run<T: FixedWidthInteger & TensorElement>(_ type: T.Type) throws -> Result
}

/// Runs `body` with the Swift type of the integer `dtype`; `.unsupported` naming `op` otherwise.
func dispatchInteger<B: IntegerBody>(_ dtype: DType, _ op: String, _ body: B) throws -> B.Result {
    switch dtype {
    case .int8: return try body.run(Int8.self)
    case .uint8: return try body.run(UInt8.self)
    case .int16: return try body.run(Int16.self)
    case .uint16: return try body.run(UInt16.self)
    case .int32: return try body.run(Int32.self)
    case .uint32: return try body.run(UInt32.self)
    case .int64: return try body.run(Int64.self)
    case .uint64: return try body.run(UInt64.self)
    default: throw KerfError.unsupported("\(op) supports integer types, got \(dtype)")
    }
}

enum BitwiseKind { case and, or, xor, shiftLeft, shiftRight }

/// x shifted left by `amount` bits, wrapping; 0 when amount is negative or at least x's width.
@inline(__always)
func shiftedLeft<T: FixedWidthInteger>(_ x: T, by amount: T) -> T {
    amount < 0 || amount >= T.bitWidth ? 0 : x &<< amount
}

/// x shifted right by `amount` bits, arithmetic for signed T; when amount is negative or at
/// least x's width, every bit is the sign bit (-1 for negative x, else 0).
@inline(__always)
func shiftedRight<T: FixedWidthInteger>(_ x: T, by amount: T) -> T {
    amount < 0 || amount >= T.bitWidth ? (x < 0 ? ~0 : 0) : x &>> amount
}

/// a (kind) b for integer tensors of one dtype, broadcasting; `op` names the operator in errors.
func bitwise(_ kind: BitwiseKind, _ a: Tensor, _ b: Tensor, op: String) throws -> Tensor {
    guard a.dtype == b.dtype else { throw KerfError.shapeMismatch("\(op) operands have different dtypes (\(a.dtype) and \(b.dtype))") }
    guard let shape = broadcastShape(a.shape, b.shape) else {
        throw KerfError.shapeMismatch("\(op): shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    struct Body: IntegerBody {
        let kind: BitwiseKind, a: Tensor, b: Tensor, shape: [Int]
        func run<T: FixedWidthInteger & TensorElement>(_: T.Type) throws -> Tensor {
            var out = try Tensor(uninitialized: a.dtype, shape: shape)
            a.withElements(as: T.self) { x in
                b.withElements(as: T.self) { y in
                    out.withMutableElements(as: T.self) { z in
                        let px = x.baseAddress!, py = y.baseAddress!, pz = z.baseAddress!
                        switch kind {
                        case .and: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { $0 & $1 }
                        case .or: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { $0 | $1 }
                        case .xor: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { $0 ^ $1 }
                        case .shiftLeft: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { shiftedLeft($0, by: $1) }
                        case .shiftRight: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { shiftedRight($0, by: $1) }
                        }
                    }
                }
            }
            return out
        }
    }
    return try dispatchInteger(a.dtype, op, Body(kind: kind, a: a, b: b, shape: shape))
}

/// ~x for an integer tensor.
func bitwiseNot(_ x: Tensor) throws -> Tensor {
    struct Body: IntegerBody {
        let x: Tensor
        func run<T: FixedWidthInteger & TensorElement>(_: T.Type) throws -> Tensor {
            var out = try Tensor(uninitialized: x.dtype, shape: x.shape)
            x.withElements(as: T.self) { src in
                out.withMutableElements(as: T.self) { dst in for i in 0..<src.count { dst[i] = ~src[i] } }
            }
            return out
        }
    }
    return try dispatchInteger(x.dtype, "BitwiseNot", Body(x: x))
}

enum BitwiseOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        for (name, kind) in [("BitwiseAnd", BitwiseKind.and), ("BitwiseOr", .or), ("BitwiseXor", .xor)] {
            r[name] = { _ in ClosureOperator { [try bitwise(kind, try $0.required(0), try $0.required(1), op: name)] } }
        }
        r["BitwiseNot"] = { _ in ClosureOperator { [try bitwiseNot(try $0.required(0))] } }
        r["BitShift"] = { c in
            let direction = try c.string("direction") ?? ""
            guard direction == "LEFT" || direction == "RIGHT" else {
                throw KerfError.invalidModel("BitShift direction must be LEFT or RIGHT, got '\(direction)'")
            }
            let kind: BitwiseKind = direction == "LEFT" ? .shiftLeft : .shiftRight
            return ClosureOperator { [try bitwise(kind, try $0.required(0), try $0.required(1), op: "BitShift")] }
        }
    }
}
