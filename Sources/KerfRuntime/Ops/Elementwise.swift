import KerfCore
import KerfKernels

// Binary arithmetic with broadcasting (Add, Sub, Mul, Div), variadic Sum/Max/Min/Mean.

enum ArithmeticKind { case add, sub, mul, div, max, min }

/// Outputs of at least this many elements are split over threads (by their first axis).
private let parallelArithmeticMinimum = 1 << 16

/// a (kind) b through `broadcastBinary`, with the operation known statically (so that the
/// loops specialize and vectorize); through `broadcastBinaryInPlace` when `out` is a or b.
@inline(__always)
private func broadcastArithmetic<T: NumericElement>(_ kind: ArithmeticKind, _ a: UnsafePointer<T>, _ aShape: [Int],
                                                    _ b: UnsafePointer<T>, _ bShape: [Int], _ out: UnsafeMutablePointer<T>, _ outShape: [Int]) {
    if UnsafePointer(out) == a || UnsafePointer(out) == b {
        let left = UnsafePointer(out) == a
        let (other, otherShape) = left ? (b, bShape) : (a, aShape)
        switch kind {
        case .add: return broadcastBinaryInPlace(out, outShape, other, otherShape, left: left, T.add)
        case .sub: return broadcastBinaryInPlace(out, outShape, other, otherShape, left: left, T.sub)
        case .mul: return broadcastBinaryInPlace(out, outShape, other, otherShape, left: left, T.mul)
        case .div: return broadcastBinaryInPlace(out, outShape, other, otherShape, left: left, T.div)
        case .max, .min: break  // correct in place too, through the general loops
        }
    }
    switch kind {
    case .add: broadcastBinary(a, aShape, b, bShape, out, outShape, T.add)
    case .sub: broadcastBinary(a, aShape, b, bShape, out, outShape, T.sub)
    case .mul: broadcastBinary(a, aShape, b, bShape, out, outShape, T.mul)
    case .div: broadcastBinary(a, aShape, b, bShape, out, outShape, T.div)
    case .max: broadcastBinary(a, aShape, b, bShape, out, outShape, T.maxPropagatingNaN)
    case .min: broadcastBinary(a, aShape, b, bShape, out, outShape, T.minPropagatingNaN)
    }
}

/// `broadcastArithmetic` with the output's first axis split over up to `threads` threads
/// (each range of it a smaller broadcast of the same operands) when the output is large.
private func parallelArithmetic<T: NumericElement>(_ kind: ArithmeticKind, _ a: UnsafePointer<T>, _ aShape: [Int],
                                                   _ b: UnsafePointer<T>, _ bShape: [Int], _ out: UnsafeMutablePointer<T>,
                                                   _ outShape: [Int], threads: Int) {
    let count = outShape.reduce(1, *)
    guard threads > 1, count >= parallelArithmeticMinimum, let rows = outShape.first, rows >= 2 else {
        broadcastArithmetic(kind, a, aShape, b, bShape, out, outShape)
        return
    }
    let rank = outShape.count
    let padA = [Int](repeating: 1, count: rank - aShape.count) + aShape
    let padB = [Int](repeating: 1, count: rank - bShape.count) + bShape
    let perRow = count / rows
    let aRow = padA[0] == 1 ? 0 : padA.reduce(1, *) / rows, bRow = padB[0] == 1 ? 0 : padB.reduce(1, *) / rows
    parallelRanges(rows, threads: threads, grain: max(1, parallelArithmeticMinimum / 4 / max(perRow, 1))) { r in
        let sliceA = padA[0] == 1 ? padA : [r.count] + padA.dropFirst()
        let sliceB = padB[0] == 1 ? padB : [r.count] + padB.dropFirst()
        broadcastArithmetic(kind, a + r.lowerBound * aRow, sliceA, b + r.lowerBound * bRow, sliceB, out + r.lowerBound * perRow,
                            [r.count] + outShape.dropFirst())
    }
}

/// out = a (op) b with ONNX broadcasting; a and b must share a numeric dtype. Large outputs are
/// split over up to `threads` threads.
func arithmetic(_ kind: ArithmeticKind, _ a: Tensor, _ b: Tensor, threads: Int = 1) throws -> Tensor {
    var a = a, b = b
    return try arithmetic(kind, consuming: &a, &b, threads: threads)
}

/// `arithmetic`, where the result may be written over a or b: over the one of the result's
/// shape that no other tensor references (`isUniquelyOwned`), else into a new tensor (reading
/// an element and writing the same element is all each output element does). a and b are
/// consumed: their elements are undefined afterwards.
func arithmetic(_ kind: ArithmeticKind, consuming a: inout Tensor, _ b: inout Tensor, threads: Int = 1) throws -> Tensor {
    guard a.dtype == b.dtype else {
        throw KerfError.shapeMismatch("operands have different dtypes (\(a.dtype) and \(b.dtype))")
    }
    if a.dtype == .float16 || a.dtype == .bfloat16 {
        return try arithmetic(kind, a.convertedToFloat32(), b.convertedToFloat32(), threads: threads).convertedFromFloat32(to: a.dtype)
    }
    guard let shape = broadcastShape(a.shape, b.shape) else {
        throw KerfError.shapeMismatch("shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    let reused: Tensor? = a.shape == shape && a.isUniquelyOwned() ? a : b.shape == shape && b.isUniquelyOwned() ? b : nil
    struct Body: NumericBody {
        let kind: ArithmeticKind, a: Tensor, b: Tensor, shape: [Int], threads: Int, reused: Tensor?
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            let out = try reused ?? Tensor(uninitialized: a.dtype, shape: shape)
            a.withElements(as: T.self) { x in
                b.withElements(as: T.self) { y in
                    // Not withMutableElements: `out` may be a or b, so its storage is shared here.
                    let pz = out.storage.pointer.assumingMemoryBound(to: T.self)
                    parallelArithmetic(kind, x.baseAddress!, a.shape, y.baseAddress!, b.shape, pz, shape, threads: threads)
                }
            }
            return out
        }
    }
    return try dispatchNumeric(a.dtype, Body(kind: kind, a: a, b: b, shape: shape, threads: threads, reused: reused))
}

enum ElementwiseOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        for (name, kind) in [("Add", ArithmeticKind.add), ("Sub", .sub), ("Mul", .mul), ("Div", .div)] {
            r[name] = { c in
                let threads = c.options.resolvedThreads
                return ClosureOperator.consuming { inputs in
                    var a = try inputs.takeRequired(0), b = try inputs.takeRequired(1)
                    return [try arithmetic(kind, consuming: &a, &b, threads: threads)]
                }
            }
        }
        for (name, kind) in [("Sum", ArithmeticKind.add), ("Max", .max), ("Min", .min), ("Mean", .add)] {
            r[name] = { c in
                let threads = c.options.resolvedThreads
                // Each partial result is written over an input no one else holds (a gradient
                // sum of the backward pass adds its terms in place).
                return ClosureOperator.consuming { inputs in
                    var xs: [Tensor] = []
                    for i in inputs.indices { if let x = inputs[i].take() { xs.append(x) } }
                    guard !xs.isEmpty else { throw KerfError.invalidArgument("\(name) needs at least one input") }
                    let count = xs.count
                    var acc = xs.removeFirst()
                    while !xs.isEmpty {
                        var x = xs.removeFirst()
                        acc = try arithmetic(kind, consuming: &acc, &x, threads: threads)
                    }
                    if name == "Mean" {
                        let n = Tensor(scalar: Float(count))
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
func mapNumeric<T: NumericElement>(_ x: Tensor, _: T.Type, _ f: (T) -> T) throws -> Tensor {
    var out = try Tensor(uninitialized: x.dtype, shape: x.shape)
    x.withElements(as: T.self) { src in
        out.withMutableElements(as: T.self) { dst in for i in 0..<src.count { dst[i] = f(src[i]) } }
    }
    return out
}

/// The first element of a numeric tensor (any numeric dtype, half types included) as Double.
func scalarValue(_ t: Tensor) throws -> Double {
    try dispatchNumeric(t.dtype == .float16 || t.dtype == .bfloat16 ? .float : t.dtype, ScalarRead(t: t.convertedToFloat32()))
}
