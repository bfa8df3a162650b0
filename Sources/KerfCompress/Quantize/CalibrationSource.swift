import KerfCore

/// Calibration (or evaluation) data as a sequence of batches, each a feed for every graph input.
/// `batch(k)` is asked for k = 0, 1, 2, ... until it returns nil; an analysis that needs another
/// pass starts again from 0, so the same index must give the same batch.
public protocol CalibrationSource {
    func batch(_ index: Int) throws -> [String: Tensor]?
    /// The number of batches when known in advance (for progress totals), else nil.
    var batchCount: Int? { get }
}

/// Arrays whose first dimension counts samples (an .npz file, or arrays from the caller), cut
/// into batches of `batchSize` samples (or of the model's fixed batch dimension).
public struct ArrayCalibration: CalibrationSource {
    public let samples: Int
    let batches: [[String: Tensor]]

    /// `batchSize` is used when `graph`'s inputs do not fix their first dimension.
    public init(_ data: [String: Tensor], graph: Graph, batchSize: Int = 32) throws {
        guard batchSize > 0 else { throw KerfError.invalidArgument("batch size must be positive, got \(batchSize)") }
        samples = try sampleCount(data, labels: nil)
        batches = try batchFeeds(data, samples: samples, batch: fixedBatch(graph) ?? batchSize)
    }

    public func batch(_ index: Int) throws -> [String: Tensor]? { index < batches.count ? batches[index] : nil }
    public var batchCount: Int? { batches.count }
}

/// Batches produced by a function (a C callback, a Python iterator); `count` is how many
/// there are, when known.
public struct ClosureCalibration: CalibrationSource {
    let next: (Int) throws -> [String: Tensor]?
    let count: Int?
    public init(count: Int? = nil, _ next: @escaping (Int) throws -> [String: Tensor]?) {
        self.count = count
        self.next = next
    }
    public func batch(_ index: Int) throws -> [String: Tensor]? { try next(index) }
    public var batchCount: Int? { count }
}

extension CalibrationSource {
    /// Calls `body` with every batch in order; returns the number of batches.
    @discardableResult
    func forEachBatch(_ body: ([String: Tensor]) throws -> Void) throws -> Int {
        var k = 0
        while let feeds = try batch(k) {
            try body(feeds)
            k += 1
        }
        return k
    }
}

extension CalibrationSource {
    public var batchCount: Int? { nil }
}
