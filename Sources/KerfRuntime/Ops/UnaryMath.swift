import KerfCore
import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

// Elementwise math: Erf, Sqrt, Exp, Log, Reciprocal, Floor, Ceil, Round (halves to even),
// Sign, and Pow (binary, with its base and exponent allowed to have different dtypes).

/// Applies a float function elementwise; float types through `unaryFloat`, integer types
/// through Double (the result converted back, truncating and saturating).
func unaryNumeric(_ x: Tensor, _ f32: @escaping (Float) -> Float, _ f64: @escaping (Double) -> Double) throws -> Tensor {
    if x.dtype.isFloatingPoint { return try unaryFloat(x, f32, f64) }
    struct Body: NumericBody {
        let x: Tensor, f: (Double) -> Double
        func run<T: NumericElement>(_: T.Type) throws -> Tensor { try mapNumeric(x, T.self) { T(fromDouble: f($0.doubleValue)) } }
    }
    return try dispatchNumeric(x.dtype, Body(x: x, f: f64))
}

/// base ** exponent with broadcasting; the output has the base's dtype. Integer bases with
/// integral non-negative exponents are computed exactly (wrapping on overflow); everything
/// else goes through floating point.
func powTensor(_ base: Tensor, _ exponent: Tensor) throws -> Tensor {
    if base.dtype == .float16 || base.dtype == .bfloat16 {
        return try powTensor(base.convertedToFloat32(), exponent).convertedFromFloat32(to: base.dtype)
    }
    let exponent = try exponent.convertedToFloat32()
    guard let shape = broadcastShape(base.shape, exponent.shape) else {
        throw KerfError.shapeMismatch("Pow: shapes \(base.shape) and \(exponent.shape) do not broadcast")
    }
    if base.dtype == .float && exponent.dtype == .float {
        if exponent.count == 1 {
            let e = exponent.withElements(as: Float.self) { $0[0] }
            if e == 2 { return try mapNumeric(base, Float.self) { $0 * $0 }.reshaped(shape) }
            if e == 3 { return try mapNumeric(base, Float.self) { $0 * $0 * $0 }.reshaped(shape) }  // tanh-GELU's cube
            if e == 1 { return base.reshaped(shape) }
            if e == 0.5 { return try mapNumeric(base, Float.self) { $0.squareRoot() }.reshaped(shape) }
        }
        var out = try Tensor(uninitialized: .float, shape: shape)
        base.withElements(as: Float.self) { x in
            exponent.withElements(as: Float.self) { y in
                out.withMutableElements(as: Float.self) { z in
                    broadcastBinary(x.baseAddress!, base.shape, y.baseAddress!, exponent.shape, z.baseAddress!, shape) { powf($0, $1) }
                }
            }
        }
        return out
    }
    // Exponents read as Double; integer exponents also kept exactly when they fit in Int64.
    struct ReadExponent: NumericBody {
        let t: Tensor
        func run<T: NumericElement>(_: T.Type) throws -> [(Double, Int64?)] {
            t.withElements(as: T.self) { xs in
                xs.map { v -> (Double, Int64?) in
                    if let i = v as? any FixedWidthInteger { return (v.doubleValue, Int64(exactly: i)) }
                    return (v.doubleValue, nil)
                }
            }
        }
    }
    let exps = try dispatchNumeric(exponent.dtype, ReadExponent(t: exponent))
    struct Body: NumericBody {
        let base: Tensor, exps: [(Double, Int64?)], expShape: [Int], shape: [Int]
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            var out = try Tensor(uninitialized: base.dtype, shape: shape)
            base.withElements(as: T.self) { x in
                exps.withUnsafeBufferPointer { y in
                    out.withMutableElements(as: T.self) { z in
                        broadcastBinary(x.baseAddress!, base.shape, y.baseAddress!, expShape, z.baseAddress!, shape) { b, e in
                            if !T.isFloatingPoint, let n = e.1, n >= 0 { return integerPower(b, n) }
                            return T(fromDouble: Glibc.pow(b.doubleValue, e.0))
                        }
                    }
                }
            }
            return out
        }
    }
    return try dispatchNumeric(base.dtype, Body(base: base, exps: exps, expShape: exponent.shape, shape: shape))
}

/// An operator applying a float32 kernel (x, y, count; x and y may alias) over ranges split
/// across `threads`, written over its input when the run hands that over; inputs of other
/// dtypes go to `other`.
func floatKernelOperator(threads: Int,
                         _ kernel: @escaping (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
                         other: @escaping (Tensor) throws -> Tensor) -> ClosureOperator {
    ClosureOperator.consuming { inputs in
        var x = try inputs.takeRequired(0)
        guard x.dtype == .float else { return [try other(x)] }
        let y = try x.isUniquelyOwned() ? x : Tensor(uninitialized: .float, shape: x.shape)
        let src = x.storage.pointer.assumingMemoryBound(to: Float.self)
        let dst = y.storage.pointer.assumingMemoryBound(to: Float.self)
        parallelRanges(x.count, threads: threads, grain: 32768) { range in
            kernel(src + range.lowerBound, dst + range.lowerBound, range.count)
        }
        return [y]
    }
}

/// -1, 0 or 1 by the sign of each element of a numeric tensor (NaN stays NaN), in its dtype.
func signs(_ x: Tensor) throws -> Tensor {
    if x.dtype == .float16 || x.dtype == .bfloat16 { return try signs(x.convertedToFloat32()).convertedFromFloat32(to: x.dtype) }
    struct Body: NumericBody {
        let x: Tensor
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            let one = T(fromDouble: 1), minusOne = T(fromDouble: -1)
            return try mapNumeric(x, T.self) { $0 > T.zero ? one : $0 < T.zero ? minusOne : $0 }
        }
    }
    return try dispatchNumeric(x.dtype, Body(x: x))
}

/// b ** n by repeated squaring with wrapping multiplication (n >= 0).
@inline(__always)
private func integerPower<T: NumericElement>(_ b: T, _ n: Int64) -> T {
    var result = T(fromDouble: 1), square = b, k = n
    while k > 0 {
        if k & 1 == 1 { result = T.mul(result, square) }
        k >>= 1
        if k > 0 { square = T.mul(square, square) }
    }
    return result
}

enum UnaryMathOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        let floatOps: [(String, (Float) -> Float, (Double) -> Double)] = [
            ("Sqrt", { $0.squareRoot() }, { $0.squareRoot() }),
            ("Exp", { expf($0) }, { Glibc.exp($0) }),
            ("Log", { logf($0) }, { Glibc.log($0) }),
            ("Reciprocal", { 1 / $0 }, { 1 / $0 }),
            ("Floor", { $0.rounded(.down) }, { $0.rounded(.down) }),
            ("Ceil", { $0.rounded(.up) }, { $0.rounded(.up) }),
            ("Round", { $0.rounded(.toNearestOrEven) }, { $0.rounded(.toNearestOrEven) }),
            ("Sin", { sinf($0) }, { Glibc.sin($0) }),
            ("Cos", { cosf($0) }, { Glibc.cos($0) }),
            ("Tan", { tanf($0) }, { Glibc.tan($0) }),
            ("Asin", { asinf($0) }, { Glibc.asin($0) }),
            ("Acos", { acosf($0) }, { Glibc.acos($0) }),
            ("Atan", { atanf($0) }, { Glibc.atan($0) }),
            ("Sinh", { sinhf($0) }, { Glibc.sinh($0) }),
            ("Cosh", { coshf($0) }, { Glibc.cosh($0) }),
            ("Asinh", { asinhf($0) }, { Glibc.asinh($0) }),
            ("Acosh", { acoshf($0) }, { Glibc.acosh($0) }),
            ("Atanh", { atanhf($0) }, { Glibc.atanh($0) }),
        ]
        for (name, f32, f64) in floatOps {
            r[name] = { _ in ClosureOperator { [try unaryFloat(try $0.required(0), f32, f64)] } }
        }
        // Erf is defined for integer types too.
        r["Erf"] = { c in
            floatKernelOperator(threads: c.options.resolvedThreads, { KerfKernels.erf($0, $1, count: $2) }) {
                try unaryNumeric($0, { erff($0) }, { Glibc.erf($0) })
            }
        }
        r["Sign"] = { _ in ClosureOperator { [try signs(try $0.required(0))] } }
        r["Pow"] = { _ in ClosureOperator { [try powTensor(try $0.required(0), try $0.required(1))] } }
    }
}
