/// Shapes read from a model, checked before any tensor of them is made.
extension Tensor {
    /// The largest element count a stored tensor may declare (2^40).
    static let maxStoredElementCount = 1 << 40

    /// `dims` of a TensorProto or SparseTensorProto as a shape and its element count: every dim
    /// in [0, 2^37], and the product of the non-zero dims (so every stride, even of an empty
    /// tensor) computed with overflow checks and below `maxStoredElementCount`. Throws
    /// `.invalidModel` naming `what` otherwise.
    static func checkedShape(_ dims: [Int64], what: String) throws -> (shape: [Int], count: Int) {
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        var nonzero = 1, empty = false
        for d in dims {
            guard d >= 0, d <= Int64(Int32.max) * 64 else {
                throw KerfError.invalidModel("\(what) has invalid dimension \(d)")
            }
            shape.append(Int(d))
            if d == 0 { empty = true; continue }
            let (c, overflow) = nonzero.multipliedReportingOverflow(by: Int(d))
            guard !overflow, c < maxStoredElementCount else {
                throw KerfError.invalidModel("\(what) has too many elements (dims \(dims))")
            }
            nonzero = c
        }
        return (shape, empty ? 0 : nonzero)
    }
}
