import KerfCore

// Element-moving ops (Where, Gather*, Scatter*, OneHot) copy elements without reading their
// values: they run over a plain integer type of the element's byte size.

/// A computation generic over an element type of fixed size, chosen by `dispatchBytes`.
protocol ByteElementBody {
    associatedtype Result
    func run<E>(_ type: E.Type) throws -> Result
}

/// Runs `body` with a trivial Swift type of `dtype`'s byte size (1, 2, 4, 8 or 16 bytes);
/// `.unsupported` naming `op` for strings and sub-byte dtypes.
func dispatchBytes<B: ByteElementBody>(_ dtype: DType, _ op: String, _ body: B) throws -> B.Result {
    guard dtype != .string, !dtype.isSubByte else { throw KerfError.unsupported("\(op) on \(dtype) is not supported") }
    switch dtype.byteSize {
    case 1: return try body.run(UInt8.self)
    case 2: return try body.run(UInt16.self)
    case 4: return try body.run(UInt32.self)
    case 8: return try body.run(UInt64.self)
    case 16: return try body.run(SIMD2<UInt64>.self)
    default: throw KerfError.unsupported("\(op) on \(dtype) is not supported")
    }
}
