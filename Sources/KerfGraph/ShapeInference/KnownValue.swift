import KerfCore

/// The contents of a small integer tensor known before running: a constant, or a shape computed
/// from other shapes (Shape → Gather → Concat → Reshape). Elements are dims, so a symbolic batch
/// size read by Shape travels as `.symbol("N")`; an element nobody can know is `.unknown`.
/// `elements.count` always equals the product of `shape` and is at most `KnownValue.maxElements`.
public struct KnownValue: Equatable, Sendable {
    /// The largest tensor tracked; larger ones are not shape computations.
    public static let maxElements = 4096

    public let shape: [Int]
    public let elements: [Dim]

    /// nil when the element count does not match `shape` or passes `maxElements`.
    public init?(shape: [Int], elements: [Dim]) {
        guard shape.allSatisfy({ $0 >= 0 }), let n = Shapes.count(shape.map(Dim.value)),
              n == elements.count, n <= KnownValue.maxElements else { return nil }
        self.shape = shape
        self.elements = elements
    }

    /// A 1-D value.
    init(vector: [Dim]) {
        shape = [vector.count]
        elements = vector
    }

    /// A scalar value.
    init(scalar: Dim) {
        shape = []
        elements = [scalar]
    }

    /// The elements as integers when every one is a known number (negative ones included).
    public var integers: [Int]? {
        var out: [Int] = []
        out.reserveCapacity(elements.count)
        for e in elements {
            guard case .value(let v) = e else { return nil }
            out.append(v)
        }
        return out
    }

    /// The value of an integer-typed tensor, or nil for other dtypes and large tensors.
    init?(tensor t: Tensor) {
        guard t.count <= KnownValue.maxElements, let ints = KnownValue.integers(of: t) else { return nil }
        self.init(shape: t.shape, elements: ints.map(Dim.value))
    }

    /// The elements of an integer (or bool) tensor widened to Int; nil for other dtypes.
    static func integers(of t: Tensor) -> [Int]? {
        guard t.storage.byteCount >= t.byteCount else { return nil }
        switch t.dtype {
        case .int64: return t.array(of: Int64.self).map { Int($0) }
        case .int32: return t.array(of: Int32.self).map { Int($0) }
        case .int16: return t.array(of: Int16.self).map { Int($0) }
        case .int8: return t.array(of: Int8.self).map { Int($0) }
        case .uint8: return t.array(of: UInt8.self).map { Int($0) }
        case .uint16: return t.array(of: UInt16.self).map { Int($0) }
        case .uint32: return t.array(of: UInt32.self).map { Int($0) }
        case .bool: return t.array(of: Bool.self).map { $0 ? 1 : 0 }
        default: return nil
        }
    }

    /// The elements of a floating-point or integer tensor as Double; nil for other dtypes.
    static func doubles(of t: Tensor) -> [Double]? {
        guard t.count <= KnownValue.maxElements, t.storage.byteCount >= t.byteCount else { return nil }
        switch t.dtype {
        case .float: return t.array(of: Float.self).map { Double($0) }
        case .double: return t.array(of: Double.self)
        default: return integers(of: t)?.map { Double($0) }
        }
    }
}
