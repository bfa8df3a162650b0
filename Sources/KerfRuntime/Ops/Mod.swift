import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

// Mod (opset 10, 13, 28) with broadcasting. fmod=0: the remainder of floored division,
// A - floor(A / B) * B, which has B's sign (Python's %); fmod=1: of truncated division,
// A - trunc(A / B) * B, with A's sign (C's fmod). Integer division by zero gives 0; floats
// follow IEEE fmod (NaN for B = ±0 or A = ±inf).

/// The floored remainder of floats: x itself for a same-signed infinite divisor, the
/// divisor for an opposite-signed one, and a zero with the divisor's sign.
@inline(__always)
private func flooredRemainder<T: BinaryFloatingPoint>(_ a: T, _ b: T) -> T {
    let r = a.truncatingRemainder(dividingBy: b)
    if r == 0 { return b.sign == .minus ? -T.zero : T.zero }
    return (r < 0) != (b < 0) ? r + b : r
}

/// The remainder of integers, truncated (`floored` false) or floored; 0 for b = 0, and no
/// trap for Int.min % -1.
@inline(__always)
private func integerRemainder<T: FixedWidthInteger>(_ a: T, _ b: T, floored: Bool) -> T {
    if b == 0 || (T.isSigned && b == 0 &- 1) { return 0 }
    let r = a % b
    return floored && r != 0 && (r < 0) != (b < 0) ? r &+ b : r
}

/// Mod of `a` and `b` (one numeric dtype) with broadcasting; float16/bfloat16 through float32.
func modulo(_ a: Tensor, _ b: Tensor, fmod: Bool) throws -> Tensor {
    guard a.dtype == b.dtype else {
        throw KerfError.shapeMismatch("Mod operands have different dtypes (\(a.dtype) and \(b.dtype))")
    }
    guard let shape = broadcastShape(a.shape, b.shape) else {
        throw KerfError.shapeMismatch("Mod: shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    if a.dtype == .float16 || a.dtype == .bfloat16 {
        return try modulo(a.convertedToFloat32(), b.convertedToFloat32(), fmod: fmod).convertedFromFloat32(to: a.dtype)
    }
    func apply<T>(_: T.Type, _ f: (T, T) -> T) throws -> Tensor {
        var out = try Tensor(uninitialized: a.dtype, shape: shape)
        a.withElements(as: T.self) { x in
            b.withElements(as: T.self) { y in
                out.withMutableElements(as: T.self) { z in
                    broadcastBinary(x.baseAddress!, a.shape, y.baseAddress!, b.shape, z.baseAddress!, shape, f)
                }
            }
        }
        return out
    }
    func integer<T: FixedWidthInteger>(_ t: T.Type) throws -> Tensor {
        fmod ? try apply(t) { integerRemainder($0, $1, floored: false) } : try apply(t) { integerRemainder($0, $1, floored: true) }
    }
    func float<T: BinaryFloatingPoint>(_ t: T.Type) throws -> Tensor {
        fmod ? try apply(t) { $0.truncatingRemainder(dividingBy: $1) } : try apply(t, flooredRemainder)
    }
    switch a.dtype {
    case .float: return try float(Float.self)
    case .double: return try float(Double.self)
    case .int8: return try integer(Int8.self)
    case .uint8: return try integer(UInt8.self)
    case .int16: return try integer(Int16.self)
    case .uint16: return try integer(UInt16.self)
    case .int32: return try integer(Int32.self)
    case .uint32: return try integer(UInt32.self)
    case .int64: return try integer(Int64.self)
    case .uint64: return try integer(UInt64.self)
    default: throw KerfError.unsupported("Mod on \(a.dtype) is not supported")
    }
}

enum ModOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Mod"] = { c in
            let fmod = try c.int("fmod", default: 0)
            guard fmod == 0 || fmod == 1 else { throw KerfError.invalidModel("Mod fmod must be 0 or 1, got \(fmod)") }
            return ClosureOperator { [try modulo(try $0.required(0), try $0.required(1), fmod: fmod == 1)] }
        }
    }
}
