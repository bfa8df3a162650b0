import FoundationEssentials
import KerfCore

// Validation shared by ops whose output shape comes from run-time data (Expand, Tile, Pad,
// Range, Resize, Einsum), and a way to run element-moving ops on string tensors.

/// The largest tensor, in bytes, an op may create from shapes it computes at run time: the
/// process-wide allocation limit (`MemoryLimit`; a session's own limit may be lower, which
/// `checkedElementCount` applies). Also a bound that keeps sizes computed in Double convertible to Int.
var maxComputedTensorBytes: Int { MemoryLimit.processBytes }

/// The element count of `shape`: every dim non-negative, no overflow, and no more bytes of
/// `dtype` (strings count 16 bytes per element) than the allocation limit allows
/// (`MemoryLimit.check`; `.outOfMemory` naming `what` and the shape otherwise).
@discardableResult
func checkedElementCount(_ shape: [Int], dtype: DType, _ what: String) throws -> Int {
    var count = 1
    for d in shape {
        guard d >= 0 else { throw KerfError.invalidArgument("\(what): output shape \(shape) has a negative dim") }
        let (c, overflow) = count.multipliedReportingOverflow(by: d)
        guard !overflow else { throw MemoryLimit.refusal("\(what) output \(shape) of \(dtype)", needs: -1, limit: MemoryLimit.processBytes) }
        count = c
    }
    let size = dtype == .string ? 16 : Swift.max(dtype.byteSize, 1)
    let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
    try MemoryLimit.check(byteCount: overflow ? -1 : bytes, for: "\(what) output \(shape) of \(dtype)")
    return count
}

/// Runs an op that only moves elements on a string tensor: `body` gets an int64 tensor of
/// the same shape holding each element's index and its result picks strings by index
/// (index -1, e.g. from padding, gives `fill`).
func movingStrings(_ x: Tensor, fill: Data = Data(), _ body: (Tensor) throws -> Tensor) throws -> Tensor {
    var idx = try Tensor(uninitialized: .int64, shape: x.shape)
    idx.withMutableElements(as: Int64.self) { for i in 0..<$0.count { $0[i] = Int64(i) } }
    let moved = try body(idx)
    let strings = moved.withElements(as: Int64.self) { ids in
        ids.map { $0 >= 0 && Int($0) < x.strings.count ? x.strings[Int($0)] : fill }
    }
    return Tensor(shape: moved.shape, strings: strings)
}

/// Runs an op that picks elements from two string tensors `a` and `b`: `body` gets int64
/// tensors of their shapes holding element indices (b's after a's) and returns picked indices
/// of `shape`, whose strings make the result.
func pooledStrings(_ a: Tensor, _ b: Tensor, shape: [Int], _ body: (Tensor, Tensor) throws -> Tensor) throws -> Tensor {
    guard a.strings.count == a.count, b.strings.count == b.count else {
        throw KerfError.invalidArgument("string tensor has the wrong number of elements")
    }
    let ia = Tensor(shape: a.shape, values: (0..<a.count).map { Int64($0) })
    let ib = Tensor(shape: b.shape, values: (0..<b.count).map { Int64(a.count + $0) })
    let picked = try body(ia, ib).array(of: Int64.self)
    let pool = a.strings + b.strings
    return Tensor(shape: shape, strings: picked.map { pool[Int($0)] })
}
