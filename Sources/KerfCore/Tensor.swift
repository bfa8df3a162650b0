import FoundationEssentials

/// A dense, row-major tensor of one dtype.
///
/// Elements live in `storage` (`shape.product * dtype.byteSize` bytes); string tensors keep
/// their elements in `strings` instead. Tensors are values: mutating accessors copy shared
/// storage first.
///
/// The initializers trust `shape` (non-negative dims whose product times the element size fits
/// Int, and memory for it): shapes read from a model or computed from attributes or run-time data
/// are checked before a tensor is made (`Tensor.checkedShape` at load, `checkedElementCount` in
/// the runtime), since an overflow or a failed allocation here stops the process.
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

    /// A zero-filled tensor.
    public init(zeros dtype: DType, shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
        self.storage = TensorStorage(byteCount: shape.reduce(1, *) * dtype.byteSize)
    }

    /// A tensor whose bytes the caller must fully write before reading.
    public init(uninitialized dtype: DType, shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
        self.storage = TensorStorage(uninitializedByteCount: shape.reduce(1, *) * dtype.byteSize)
    }

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
        self.init(uninitialized: T.dtype, shape: shape)
        values.withUnsafeBytes { storage.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// A string tensor.
    public init(shape: [Int], strings: [Data]) {
        self.dtype = .string
        self.shape = shape
        self.storage = TensorStorage(byteCount: 0)
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
