import KerfCore
import KerfKernels

// NonZero (opset 9, 13): the coordinates of the non-zero elements as int64 [rank, count],
// elements in row-major order. A scalar gives [0, count]. Float zeros of either sign count as
// zero and NaN as non-zero; bool false and empty strings as zero.

/// Whether each element of `x` is non-zero (numeric, bool or string dtypes).
private func nonZeroMask(_ x: Tensor) throws -> [Bool] {
    if x.dtype == .string {
        guard x.strings.count == x.count else { throw KerfError.invalidArgument("string tensor has the wrong number of elements") }
        return x.strings.map { !$0.isEmpty }
    }
    guard x.dtype.isComputable else { throw KerfError.unsupported("NonZero on \(x.dtype) is not supported") }
    // The element's bits, without the sign bit for floats.
    func nonZeroBits<U: FixedWidthInteger & UnsignedInteger>(_: U.Type) -> [Bool] {
        let mask: U = x.dtype.isFloatingPoint ? ~(U(1) << (U.bitWidth - 1)) : ~U(0)
        return x.withElements(as: U.self) { $0.map { $0 & mask != 0 } }
    }
    switch x.dtype.byteSize {
    case 1: return nonZeroBits(UInt8.self)
    case 2: return nonZeroBits(UInt16.self)
    case 4: return nonZeroBits(UInt32.self)
    case 8: return nonZeroBits(UInt64.self)
    default: throw KerfError.unsupported("NonZero on \(x.dtype) is not supported")
    }
}

/// NonZero of `x`: int64 [rank, count] coordinates of its non-zero elements.
func nonZero(_ x: Tensor) throws -> Tensor {
    let mask = try nonZeroMask(x)
    let positions = mask.indices.filter { mask[$0] }
    var out = try Tensor(uninitialized: .int64, shape: [x.rank, positions.count])
    let strides = denseStrides(x.shape)
    out.withMutableElements(as: Int64.self) { dst in
        for (n, p) in positions.enumerated() {
            for d in 0..<x.rank { dst[d * positions.count + n] = Int64(p / strides[d] % x.shape[d]) }
        }
    }
    return out
}

enum NonZeroOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["NonZero"] = { _ in ClosureOperator { [try nonZero(try $0.required(0))] } }
    }
}
