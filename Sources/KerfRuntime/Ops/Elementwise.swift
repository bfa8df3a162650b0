import KerfCore
import KerfKernels

// Binary arithmetic with broadcasting (Add, Sub, Mul, Div), variadic Sum/Max/Min/Mean.

enum ArithmeticKind { case add, sub, mul, div, max, min }

/// out = a (op) b with ONNX broadcasting; a and b must share a numeric dtype.
func arithmetic(_ kind: ArithmeticKind, _ a: Tensor, _ b: Tensor) throws -> Tensor {
    guard a.dtype == b.dtype else {
        throw KerfError.shapeMismatch("operands have different dtypes (\(a.dtype) and \(b.dtype))")
    }
    if a.dtype == .float16 || a.dtype == .bfloat16 {
        return try arithmetic(kind, a.convertedToFloat32(), b.convertedToFloat32()).convertedFromFloat32(to: a.dtype)
    }
    guard let shape = broadcastShape(a.shape, b.shape) else {
        throw KerfError.shapeMismatch("shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    struct Body: NumericBody {
        let kind: ArithmeticKind, a: Tensor, b: Tensor, shape: [Int]
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            var out = Tensor(uninitialized: a.dtype, shape: shape)
            a.withElements(as: T.self) { x in
                b.withElements(as: T.self) { y in
                    out.withMutableElements(as: T.self) { z in
                        let px = x.baseAddress!, py = y.baseAddress!, pz = z.baseAddress!
                        switch kind {
                        case .add: broadcastBinary(px, a.shape, py, b.shape, pz, shape, T.add)
                        case .sub: broadcastBinary(px, a.shape, py, b.shape, pz, shape, T.sub)
                        case .mul: broadcastBinary(px, a.shape, py, b.shape, pz, shape, T.mul)
                        case .div: broadcastBinary(px, a.shape, py, b.shape, pz, shape, T.div)
                        case .max: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { p, q in
                            (T.isFloatingPoint && p != p) ? p : (q != q ? q : Swift.max(p, q)) }
                        case .min: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { p, q in
                            (T.isFloatingPoint && p != p) ? p : (q != q ? q : Swift.min(p, q)) }
                        }
                    }
                }
            }
            return out
        }
    }
    return try dispatchNumeric(a.dtype, Body(kind: kind, a: a, b: b, shape: shape))
}

enum ElementwiseOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        for (name, kind) in [("Add", ArithmeticKind.add), ("Sub", .sub), ("Mul", .mul), ("Div", .div)] {
            r[name] = { _ in ClosureOperator { [try arithmetic(kind, try $0.required(0), try $0.required(1))] } }
        }
        for (name, kind) in [("Sum", ArithmeticKind.add), ("Max", .max), ("Min", .min), ("Mean", .add)] {
            r[name] = { _ in
                ClosureOperator { inputs in
                    let xs = inputs.compactMap { $0 }
                    guard var acc = xs.first else { throw KerfError.invalidArgument("\(name) needs at least one input") }
                    for x in xs.dropFirst() { acc = try arithmetic(kind, acc, x) }
                    if name == "Mean" {
                        let n = Tensor(scalar: Float(xs.count))
                        acc = try withFloat32([acc]) { [try arithmetic(.div, $0[0]!, castScalar(n, to: $0[0]!.dtype))] }[0]
                    }
                    return [acc]
                }
            }
        }
    }
}

/// A one-element tensor converted to `dtype` (numeric dtypes only).
func castScalar(_ t: Tensor, to dtype: DType) throws -> Tensor {
    let v: Double = try dispatchNumeric(t.dtype, ScalarRead(t: t))
    struct Make: NumericBody {
        let v: Double
        func run<T: NumericElement>(_: T.Type) throws -> Tensor { Tensor(scalar: T(fromDouble: v)) }
    }
    return try dispatchNumeric(dtype, Make(v: v))
}

struct ScalarRead: NumericBody {
    let t: Tensor
    func run<T: NumericElement>(_: T.Type) throws -> Double {
        guard t.count >= 1 else { throw KerfError.shapeMismatch("expected a scalar, got an empty tensor") }
        return t.withElements(as: T.self) { $0[0].doubleValue }
    }
}

/// Maps every element of a numeric tensor through `f`, keeping the dtype.
func mapNumeric<T: NumericElement>(_ x: Tensor, _: T.Type, _ f: (T) -> T) -> Tensor {
    var out = Tensor(uninitialized: x.dtype, shape: x.shape)
    x.withElements(as: T.self) { src in
        out.withMutableElements(as: T.self) { dst in for i in 0..<src.count { dst[i] = f(src[i]) } }
    }
    return out
}

/// The first element of a numeric tensor (any numeric dtype, half types included) as Double.
func scalarValue(_ t: Tensor) throws -> Double {
    try dispatchNumeric(t.dtype == .float16 || t.dtype == .bfloat16 ? .float : t.dtype, ScalarRead(t: t.convertedToFloat32()))
}
