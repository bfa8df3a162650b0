import KerfCore

// The write step of ScatterElements and ScatterND: a copy of `data` into which update slices
// are stored or combined (`reduction`: add and mul from opset 16, max and min from 18).

enum ScatterReduction: String {
    case none, add, mul, max, min

    /// The node's `reduction` attribute, checked against the values its opset defines.
    init(_ c: OperatorContext) throws {
        let name = try c.string("reduction", default: "none")
        let allowed: [String] = c.opset >= 18 ? ["none", "add", "mul", "max", "min"] : c.opset >= 16 ? ["none", "add", "mul"] : ["none"]
        guard allowed.contains(name), let reduction = ScatterReduction(rawValue: name) else {
            throw KerfError.invalidModel("\(c.node.opType)-\(c.opset) reduction '\(name)' is not one of \(allowed)")
        }
        self = reduction
    }
}

/// A copy of `data` where, for each i in order, the `slice` elements from offsets[i] are
/// replaced by (reduction none) or combined with the updates' i-th run of `slice` elements.
/// `updates` has data's dtype and offsets.count * slice elements; offsets are in bounds
/// (validated by the caller). max and min give NaN where either operand is NaN.
func scatterSlices(_ data: Tensor, updates: Tensor, offsets: [Int], slice: Int,
                   reduction: ScatterReduction, op: String) throws -> Tensor {
    guard updates.dtype == data.dtype else {
        throw KerfError.shapeMismatch("\(op): updates are \(updates.dtype), data is \(data.dtype)")
    }
    if reduction == .none {
        if data.dtype == .string {
            return try pooledStrings(data, updates, shape: data.shape) {
                try scatterSlices($0, updates: $1, offsets: offsets, slice: slice, reduction: .none, op: op)
            }
        }
        struct Store: ByteElementBody {
            let data: Tensor, updates: Tensor, offsets: [Int], slice: Int
            func run<E>(_: E.Type) throws -> Tensor {
                var out = data
                updates.withElements(as: E.self) { u in
                    out.withMutableElements(as: E.self) { o in
                        for (i, offset) in offsets.enumerated() {
                            for j in 0..<slice { o[offset + j] = u[i * slice + j] }
                        }
                    }
                }
                return out
            }
        }
        return try dispatchBytes(data.dtype, op, Store(data: data, updates: updates, offsets: offsets, slice: slice))
    }
    if data.dtype == .float16 || data.dtype == .bfloat16 {
        return try scatterSlices(data.convertedToFloat32(), updates: updates.convertedToFloat32(), offsets: offsets,
                                 slice: slice, reduction: reduction, op: op).convertedFromFloat32(to: data.dtype)
    }
    struct Combine: NumericBody {
        let data: Tensor, updates: Tensor, offsets: [Int], slice: Int, reduction: ScatterReduction
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            switch reduction {
            case .add: return try combine(T.add)
            case .mul: return try combine(T.mul)
            case .max: return try combine(T.maxPropagatingNaN)
            case .min: return try combine(T.minPropagatingNaN)
            case .none: return try combine { (_: T, u: T) in u }
            }
        }
        @inline(__always)
        func combine<T: NumericElement>(_ f: (T, T) -> T) throws -> Tensor {
            var out = data
            updates.withElements(as: T.self) { u in
                out.withMutableElements(as: T.self) { o in
                    for (i, offset) in offsets.enumerated() {
                        for j in 0..<slice { o[offset + j] = f(o[offset + j], u[i * slice + j]) }
                    }
                }
            }
            return out
        }
    }
    guard data.dtype != .bool else { throw KerfError.unsupported("\(op) reduction '\(reduction.rawValue)' on bool is not supported") }
    return try dispatchNumeric(data.dtype, Combine(data: data, updates: updates, offsets: offsets, slice: slice, reduction: reduction))
}
