import FoundationEssentials

/// A dense, row-major tensor of one dtype.
///
/// Elements live in `storage` (`shape.product * dtype.byteSize` bytes); string tensors keep
/// their elements in `strings` instead. Tensors are values: mutating accessors copy shared
/// storage first.
///
/// `init(zeros:)` and `init(uninitialized:)` check their size (overflow, the allocation limit of
/// `MemoryLimit`, the system's refusal) and throw `.outOfMemory`; the other initializers copy or
/// view memory that already exists and trust `shape`. Shapes read from a model are checked
/// further before a tensor is made (`Tensor.checkedShape` at load, `checkedElementCount` in the
/// runtime).
public struct Tensor: @unchecked Sendable {
    public let dtype: DType
    public let shape: [Int]
    public private(set) var storage: TensorStorage
    /// Elements of a `.string` tensor (empty for every other dtype).
    public var strings: [Data] = []

    /// Number of elements (1 for a scalar).
    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var byteCount: Int { count * dtype.byteSize }

    /// A zero-filled tensor. Throws `.outOfMemory` when its bytes would pass the allocation
    /// limit (`MemoryLimit`) or the system refuses them.
    public init(zeros dtype: DType, shape: [Int]) throws {
        self.dtype = dtype
        self.shape = shape
        let bytes = try Tensor.byteCount(dtype, shape)
        self.storage = try TensorStorage(byteCount: bytes, for: Tensor.describe(dtype, shape))
    }

    /// A tensor whose bytes the caller must fully write before reading; throws as `init(zeros:shape:)`.
    public init(uninitialized dtype: DType, shape: [Int]) throws {
        self.dtype = dtype
        self.shape = shape
        let bytes = try Tensor.byteCount(dtype, shape)
        self.storage = try TensorStorage(uninitializedByteCount: bytes, for: Tensor.describe(dtype, shape))
    }

    /// The bytes of a `dtype` tensor of `shape`, or `.outOfMemory` when they overflow Int
    /// (dims must be non-negative: `.internal` otherwise).
    static func byteCount(_ dtype: DType, _ shape: [Int]) throws -> Int {
        var bytes = dtype.byteSize
        for d in shape {
            guard d >= 0 else { throw KerfError.internal("a tensor of shape \(shape) has a negative dim") }
            let (b, overflow) = bytes.multipliedReportingOverflow(by: d)
            guard !overflow else {
                throw MemoryLimit.refusal(describe(dtype, shape), needs: -1, limit: MemoryLimit.processBytes)
            }
            bytes = b
        }
        return bytes
    }

    /// "a tensor [2, 3] of float", for messages.
    static func describe(_ dtype: DType, _ shape: [Int]) -> String { "a tensor \(shape) of \(dtype)" }

    /// A tensor over existing storage, which must hold at least `shape.product * byteSize` bytes.
    public init(dtype: DType, shape: [Int], storage: TensorStorage) {
        precondition(storage.byteCount >= shape.reduce(1, *) * dtype.byteSize)
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
    }

    /// A tensor of `shape` holding `values` (row-major); `values.count` must equal the element count.
    public init<T: TensorElement>(shape: [Int], values: [T]) {
        precondition(values.count == shape.reduce(1, *), "value count does not match shape")
        self.init(dtype: T.dtype, shape: shape, storage: TensorStorage(copyingByteCount: values.count * T.dtype.byteSize))
        values.withUnsafeBytes { storage.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// A string tensor.
    public init(shape: [Int], strings: [Data]) {
        self.dtype = .string
        self.shape = shape
        self.storage = TensorStorage(copyingByteCount: 0)
        self.strings = strings
    }

    /// A scalar.
    public init<T: TensorElement>(scalar: T) { self.init(shape: [], values: [scalar]) }

    /// The same elements viewed with another shape of equal element count (no copy).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count)
        var t = Tensor(dtype: dtype, shape: newShape, storage: storage)
        t.strings = strings
        return t
    }

    /// Read access to the elements as `T` (`T.dtype` must match, or share its byte layout).
    @inlinable
    public func withElements<T, R>(as type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer.assumingMemoryBound(to: T.self), count: count))
    }

    /// Write access to the elements as `T`; copies storage first if it is shared or borrowed.
    @inlinable
    public mutating func withMutableElements<T, R>(as type: T.Type, _ body: (UnsafeMutableBufferPointer<T>) throws -> R) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer.assumingMemoryBound(to: T.self), count: count))
    }

    /// True when this tensor is the only reference to its storage and the storage is Kerf's own
    /// (not borrowed): its elements may then be overwritten without changing any other tensor.
    public mutating func isUniquelyOwned() -> Bool {
        isKnownUniquelyReferenced(&storage) && !storage.isBorrowed
    }

    @usableFromInline
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) || storage.isBorrowed { storage = storage.copy() }
    }

    /// The elements as a Swift array of `T`.
    public func array<T>(of type: T.Type) -> [T] { withElements(as: T.self) { Array($0) } }

    /// Raw element bytes.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage.pointer, count: byteCount) }
}

/// Swift types that are the in-memory form of one `DType`.
public protocol TensorElement { static var dtype: DType { get } }
extension Float: TensorElement { public static var dtype: DType { .float } }
extension Double: TensorElement { public static var dtype: DType { .double } }
extension UInt8: TensorElement { public static var dtype: DType { .uint8 } }
extension Int8: TensorElement { public static var dtype: DType { .int8 } }
extension UInt16: TensorElement { public static var dtype: DType { .uint16 } }
extension Int16: TensorElement { public static var dtype: DType { .int16 } }
extension Int32: TensorElement { public static var dtype: DType { .int32 } }
extension Int64: TensorElement { public static var dtype: DType { .int64 } }
extension UInt32: TensorElement { public static var dtype: DType { .uint32 } }
extension UInt64: TensorElement { public static var dtype: DType { .uint64 } }
extension Bool: TensorElement { public static var dtype: DType { .bool } }
