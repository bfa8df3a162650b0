import KerfCore

/// Element types the arithmetic kernels are generic over. Integer arithmetic wraps (as
/// ONNX Runtime's does) and integer division by zero gives 0 instead of trapping.
public protocol NumericElement: TensorElement, Comparable {
    static var zero: Self { get }
    static func add(_ a: Self, _ b: Self) -> Self
    static func sub(_ a: Self, _ b: Self) -> Self
    static func mul(_ a: Self, _ b: Self) -> Self
    static func div(_ a: Self, _ b: Self) -> Self
    init(fromDouble: Double)
    var doubleValue: Double { get }
    static var isFloatingPoint: Bool { get }
    /// Integers: the value as 64-bit two's complement (sign-extended or zero-extended).
    /// Floating point: the value truncated toward zero and saturated, NaN -> 0.
    var int64Bits: Int64 { get }
    /// Integers: the low bits of `bits` (C's truncating conversion). Floating point: the value.
    init(truncatingBits bits: Int64)
}

extension NumericElement where Self: BinaryFloatingPoint {
    public static var zero: Self { 0 }
    @inline(__always) public static func add(_ a: Self, _ b: Self) -> Self { a + b }
    @inline(__always) public static func sub(_ a: Self, _ b: Self) -> Self { a - b }
    @inline(__always) public static func mul(_ a: Self, _ b: Self) -> Self { a * b }
    @inline(__always) public static func div(_ a: Self, _ b: Self) -> Self { a / b }
    public init(fromDouble d: Double) { self.init(d) }
    public var doubleValue: Double { Double(self) }
    public static var isFloatingPoint: Bool { true }
    public var int64Bits: Int64 { Int64(fromDouble: Double(self)) }
    public init(truncatingBits bits: Int64) { self.init(bits) }
}

extension NumericElement where Self: FixedWidthInteger {
    public static var zero: Self { 0 }
    @inline(__always) public static func add(_ a: Self, _ b: Self) -> Self { a &+ b }
    @inline(__always) public static func sub(_ a: Self, _ b: Self) -> Self { a &- b }
    @inline(__always) public static func mul(_ a: Self, _ b: Self) -> Self { a &* b }
    @inline(__always) public static func div(_ a: Self, _ b: Self) -> Self {
        if b == 0 { return 0 }
        if Self.isSigned && b == -1 { return 0 &- a }
        return a / b
    }
    public init(fromDouble d: Double) {
        if d.isNaN { self = 0 } else if d >= Double(Self.max) { self = .max } else if d <= Double(Self.min) { self = .min }
        else { self.init(d) }
    }
    public var doubleValue: Double { Double(self) }
    public static var isFloatingPoint: Bool { false }
    @inline(__always) public var int64Bits: Int64 { Int64(truncatingIfNeeded: self) }
    @inline(__always) public init(truncatingBits bits: Int64) { self.init(truncatingIfNeeded: bits) }
}

extension NumericElement {
    /// The larger of p and q, NaN when either is NaN (numpy's `maximum`).
    @inline(__always) public static func maxPropagatingNaN(_ p: Self, _ q: Self) -> Self {
        p != p ? p : (q != q ? q : Swift.max(p, q))
    }
    /// The smaller of p and q, NaN when either is NaN (numpy's `minimum`).
    @inline(__always) public static func minPropagatingNaN(_ p: Self, _ q: Self) -> Self {
        p != p ? p : (q != q ? q : Swift.min(p, q))
    }
}

extension Float: NumericElement {}
extension Double: NumericElement {}
extension Int8: NumericElement {}
extension UInt8: NumericElement {}
extension Int16: NumericElement {}
extension UInt16: NumericElement {}
extension Int32: NumericElement {}
extension UInt32: NumericElement {}
extension Int64: NumericElement {}
extension UInt64: NumericElement {}

/// A computation generic over the element type, chosen at run time by `dispatchNumeric`.
public protocol NumericBody {
    associatedtype Result
    func run<T: NumericElement>(_ type: T.Type) throws -> Result
}

/// Runs `body` with the Swift type of `dtype`. float16 / bfloat16 are not handled here: ops
/// convert them to float32 first (see `withFloat32`).
public func dispatchNumeric<B: NumericBody>(_ dtype: DType, _ body: B) throws -> B.Result {
    switch dtype {
    case .float: return try body.run(Float.self)
    case .double: return try body.run(Double.self)
    case .int8: return try body.run(Int8.self)
    case .uint8: return try body.run(UInt8.self)
    case .int16: return try body.run(Int16.self)
    case .uint16: return try body.run(UInt16.self)
    case .int32: return try body.run(Int32.self)
    case .uint32: return try body.run(UInt32.self)
    case .int64: return try body.run(Int64.self)
    case .uint64: return try body.run(UInt64.self)
    default: throw KerfError.unsupported("dtype \(dtype) is not supported here")
    }
}

/// A computation generic over a floating-point element type, chosen by `dispatchFloat`.
public protocol FloatBody {
    associatedtype Result
    func run<T: NumericElement & BinaryFloatingPoint>(_ type: T.Type) throws -> Result
}

/// Runs `body` with Float or Double for float32 or double; `.unsupported` naming `op` for other
/// dtypes (half types are converted to float32 first, see `withFloat32`).
public func dispatchFloat<B: FloatBody>(_ dtype: DType, _ op: String, _ body: B) throws -> B.Result {
    switch dtype {
    case .float: return try body.run(Float.self)
    case .double: return try body.run(Double.self)
    default: throw KerfError.unsupported("\(op) supports float types, got \(dtype)")
    }
}

/// Runs a float computation on half-precision tensors by converting them to float32 and the
/// results back to the inputs' dtype. Other dtypes pass through unchanged.
public func withFloat32(_ inputs: [Tensor?], _ body: ([Tensor?]) throws -> [Tensor]) throws -> [Tensor] {
    var half: DType? = nil
    for i in inputs.indices {  // (an index loop: no copies of the tensors)
        if let dtype = inputs[i]?.dtype, dtype == .float16 || dtype == .bfloat16 {
            half = dtype
            break
        }
    }
    guard let half else { return try body(inputs) }
    let converted = try inputs.map { t -> Tensor? in
        guard let t, t.dtype == half else { return t }
        return try t.convertedToFloat32()
    }
    return try body(converted).map { $0.dtype == .float ? try $0.convertedFromFloat32(to: half) : $0 }
}

extension Tensor {
    /// Converts float16 / bfloat16 (or float32, unchanged) to float32.
    public func convertedToFloat32() throws -> Tensor {
        switch dtype {
        case .float16:
            var out = try Tensor(uninitialized: .float, shape: shape)
            withElements(as: Float16.self) { src in
                out.withMutableElements(as: Float.self) { dst in for i in 0..<src.count { dst[i] = Float(src[i]) } }
            }
            return out
        case .bfloat16:
            var out = try Tensor(uninitialized: .float, shape: shape)
            withElements(as: UInt16.self) { src in
                out.withMutableElements(as: Float.self) { dst in for i in 0..<src.count { dst[i] = Float(bitPattern: UInt32(src[i]) << 16) } }
            }
            return out
        default:
            return self
        }
    }

    /// Converts float32 to float16 or bfloat16 (round to nearest even).
    public func convertedFromFloat32(to target: DType) throws -> Tensor {
        switch target {
        case .float16:
            var out = try Tensor(uninitialized: .float16, shape: shape)
            withElements(as: Float.self) { src in
                out.withMutableElements(as: Float16.self) { dst in for i in 0..<src.count { dst[i] = Float16(src[i]) } }
            }
            return out
        case .bfloat16:
            var out = try Tensor(uninitialized: .bfloat16, shape: shape)
            withElements(as: Float.self) { src in
                out.withMutableElements(as: UInt16.self) { dst in
                    for i in 0..<src.count { dst[i] = bfloat16Bits(src[i]) }
                }
            }
            return out
        default:
            return self
        }
    }
}

/// float32 -> bfloat16 bits, round to nearest even; NaN stays NaN.
@inline(__always)
func bfloat16Bits(_ f: Float) -> UInt16 {
    if f.isNaN { return 0x7FC0 }
    let bits = f.bitPattern
    let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: rounded >> 16)
}
