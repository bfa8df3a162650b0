/// A row-major walk over the indices of `shape` that keeps `offset` = Σ index[d]·strides[d]
/// (strides in elements, any sign or zero) for the current index: started at any linear
/// position, then advanced one index at a time, the last axis fastest.
public struct Odometer {
    /// The offset of the current index.
    public private(set) var offset = 0
    private var index: [Int]
    private let shape: [Int], strides: [Int]

    /// At linear position `position` (row-major) of `shape`; `strides` has one entry per axis.
    public init(shape: [Int], strides: [Int], at position: Int) {
        self.shape = shape
        self.strides = strides
        index = [Int](repeating: 0, count: shape.count)
        var rest = position
        for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
            index[d] = rest % shape[d]
            rest /= shape[d]
            offset += index[d] * strides[d]
        }
    }

    /// Moves to the next index (past the last one, back to the first).
    @inline(__always)
    public mutating func advance() {
        var d = shape.count - 1
        while d >= 0 {
            index[d] += 1
            offset += strides[d]
            if index[d] < shape[d] { return }
            offset -= strides[d] * shape[d]
            index[d] = 0
            d -= 1
        }
    }
}
