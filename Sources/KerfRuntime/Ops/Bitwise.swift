import KerfCore
import KerfKernels

// BitShift (opset 11; signed types from opset 28), BitwiseAnd, BitwiseOr, BitwiseXor,
// BitwiseNot (opset 18): integer tensors of one dtype, binary ops with ONNX broadcasting.

enum BitwiseKind { case and, or, xor, shiftLeft, shiftRight }

/// x (kind) y for two elements of a `width`-bit integer type given in 64-bit two's complement
/// (`NumericElement.int64Bits`: sign-extended when `signed`, else zero-extended); the result's
/// low `width` bits are the element's. A shift by a negative amount or by `width` or more gives
/// 0, or for a right shift of a negative x, -1 (every bit the sign bit). Right shifts are
/// arithmetic for signed types, logical for unsigned ones.
@inline(__always)
func bitwise(_ kind: BitwiseKind, _ x: Int64, _ y: Int64, width: Int, signed: Bool) -> Int64 {
    switch kind {
    case .and: return x & y
    case .or: return x | y
    case .xor: return x ^ y
    case .shiftLeft: return y < 0 || y >= width ? 0 : x &<< y
    case .shiftRight:
        if y < 0 || y >= width { return signed && x < 0 ? -1 : 0 }
        return signed ? x &>> y : Int64(bitPattern: UInt64(bitPattern: x) &>> UInt64(y))
    }
}

/// Throws unless `dtype` is an integer type (8 to 64 bits, signed or not).
private func requireInteger(_ dtype: DType, _ op: String) throws {
    guard dtype.isComputable, !dtype.isFloatingPoint, dtype != .bool else {
        throw KerfError.unsupported("\(op) supports integer types, got \(dtype)")
    }
}

/// a (kind) b for integer tensors of one dtype, broadcasting; `op` names the operator in errors.
func bitwise(_ kind: BitwiseKind, _ a: Tensor, _ b: Tensor, op: String) throws -> Tensor {
    try requireInteger(a.dtype, op)
    guard a.dtype == b.dtype else { throw KerfError.shapeMismatch("\(op) operands have different dtypes (\(a.dtype) and \(b.dtype))") }
    guard let shape = broadcastShape(a.shape, b.shape) else {
        throw KerfError.shapeMismatch("\(op): shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    struct Body: NumericBody {
        let kind: BitwiseKind, a: Tensor, b: Tensor, shape: [Int]
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            let width = MemoryLayout<T>.size * 8, signed = T(truncatingBits: -1) < T.zero
            var out = try Tensor(uninitialized: a.dtype, shape: shape)
            a.withElements(as: T.self) { x in
                b.withElements(as: T.self) { y in
                    out.withMutableElements(as: T.self) { z in
                        broadcastBinary(x.baseAddress!, a.shape, y.baseAddress!, b.shape, z.baseAddress!, shape) {
                            T(truncatingBits: bitwise(kind, $0.int64Bits, $1.int64Bits, width: width, signed: signed))
                        }
                    }
                }
            }
            return out
        }
    }
    return try dispatchNumeric(a.dtype, Body(kind: kind, a: a, b: b, shape: shape))
}

/// ~x for an integer tensor.
func bitwiseNot(_ x: Tensor) throws -> Tensor {
    try requireInteger(x.dtype, "BitwiseNot")
    struct Body: NumericBody {
        let x: Tensor
        func run<T: NumericElement>(_: T.Type) throws -> Tensor { try mapNumeric(x, T.self) { T(truncatingBits: ~$0.int64Bits) } }
    }
    return try dispatchNumeric(x.dtype, Body(x: x))
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
