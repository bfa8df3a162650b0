import KerfCore

/// Where training or validation batches come from.
public enum TrainingData {
    /// Whole arrays by feed name (model inputs and loss targets), samples on axis 0; the loop
    /// batches them (shuffled per epoch for training, seeded).
    case arrays([String: Tensor])
    /// Batches from the caller: `batch(epoch, index)` returns the feeds of batch `index` of
    /// `epoch` (both from 0), or nil when the epoch has no more. The same (epoch, index) must
    /// give the same batch (resuming from a checkpoint asks again).
    case batches((_ epoch: Int, _ index: Int) throws -> [String: Tensor]?)
    /// The batches of `data`, each passed through `complete` (which adds feeds, e.g. a
    /// teacher's outputs for the batch's inputs).
    indirect case completed(TrainingData, (_ feeds: [String: Tensor]) throws -> [String: Tensor])

    /// The number of samples of `.arrays`, after checking that every array has the same number
    /// on axis 0 (nil for `.batches`).
    func sampleCount() throws -> Int? {
        if case .completed(let data, _) = self { return try data.sampleCount() }
        guard case .arrays(let arrays) = self else { return nil }
        guard let first = arrays.first else { throw KerfError.invalidArgument("the training data has no arrays") }
        guard first.value.rank >= 1 else { throw KerfError.shapeMismatch("array '\(first.key)' is a scalar; samples go on axis 0") }
        let n = first.value.shape[0]
        for (name, t) in arrays {
            guard t.rank >= 1, t.shape[0] == n else {
                throw KerfError.shapeMismatch("array '\(name)' has \(t.rank >= 1 ? t.shape[0] : 0) samples, '\(first.key)' \(n)")
            }
        }
        guard n > 0 else { throw KerfError.invalidArgument("the training data has no samples") }
        return n
    }

    /// Batch `index` of `epoch`: for `.arrays`, the rows `order[index·batchSize ..< ...]`.
    func batch(epoch: Int, index: Int, order: [Int], batchSize: Int) throws -> [String: Tensor]? {
        switch self {
        case .batches(let next):
            return try next(epoch, index)
        case .completed(let data, let complete):
            return try data.batch(epoch: epoch, index: index, order: order, batchSize: batchSize).map(complete)
        case .arrays(let arrays):
            let start = index * batchSize
            guard start < order.count else { return nil }
            let rows = Array(order[start..<min(start + batchSize, order.count)])
            return try arrays.mapValues { try gatherRows($0, rows) }
        }
    }
}

/// The rows `rows` of `t` (along axis 0), as a new tensor.
func gatherRows(_ t: Tensor, _ rows: [Int]) throws -> Tensor {
    guard t.dtype != .string else { throw KerfError.unsupported("string arrays as training data") }
    var shape = t.shape
    shape[0] = rows.count
    let out = try Tensor(uninitialized: t.dtype, shape: shape)
    let rowBytes = t.shape.dropFirst().reduce(1, *) * t.dtype.byteSize
    let src = UnsafeRawPointer(t.storage.pointer), dst = out.storage.pointer
    for (k, r) in rows.enumerated() {
        (dst + k * rowBytes).copyMemory(from: src + r * rowBytes, byteCount: rowBytes)
    }
    return out
}

/// `parts` (tensors of one dtype and the same shape past axis 0) joined along axis 0.
func concatenatedRows(_ parts: [Tensor]) throws -> Tensor {
    guard let first = parts.first else { throw KerfError.invalidArgument("no rows to join") }
    let tail = Array(first.shape.dropFirst())
    for p in parts where p.dtype != first.dtype || Array(p.shape.dropFirst()) != tail || p.rank != first.rank {
        throw KerfError.shapeMismatch("cannot join rows of \(p.dtype) \(p.shape) to \(first.dtype) \(first.shape)")
    }
    let out = try Tensor(uninitialized: first.dtype, shape: [parts.reduce(0) { $0 + $1.shape[0] }] + tail)
    var offset = 0
    for p in parts {
        let bytes = p.count * p.dtype.byteSize
        (out.storage.pointer + offset).copyMemory(from: UnsafeRawPointer(p.storage.pointer), byteCount: bytes)
        offset += bytes
    }
    return out
}

/// A seeded permutation of 0..<n for `epoch` (SplitMix64 and Fisher–Yates): the same seed and
/// epoch give the same order on every machine.
func shuffledOrder(_ n: Int, seed: UInt64, epoch: Int) -> [Int] {
    var random = SplitMix64(seed: seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1))
    var order = Array(0..<n)
    if n < 2 { return order }
    for i in stride(from: n - 1, to: 0, by: -1) {
        let j = Int(random.next() % UInt64(i + 1))
        order.swapAt(i, j)
    }
    return order
}
