import FoundationEssentials
import KerfCore
#if canImport(Glibc)
import Glibc
#endif

// Shared by sensitivity analysis and quantization: cutting sample arrays into feeds,
// predicted classes, and comparing outputs against a reference.

/// The number of samples (first dimension) all data arrays and the labels share.
func sampleCount(_ data: [String: Tensor], labels: Tensor?) throws -> Int {
    guard let first = data.values.first else { throw KerfError.invalidArgument("no data for the model's inputs") }
    let counts = Set(data.values.map { $0.shape.first ?? 1 } + (labels.map { [$0.shape.first ?? 1] } ?? []))
    guard counts.count == 1, first.rank >= 1 else {
        throw KerfError.shapeMismatch("data arrays (and labels) must share their first dimension, got \(data.mapValues(\.shape))")
    }
    return counts.first!
}

/// The batch size every declared input fixes in its first dimension, if any.
func fixedBatch(_ graph: Graph) -> Int? {
    for input in graph.runtimeInputs {
        if let shape = input.shape, case .value(let v)? = shape.first { return v }
    }
    return nil
}

/// `data` cut into feeds of `batch` samples (the last one may be shorter).
func batchFeeds(_ data: [String: Tensor], samples: Int, batch: Int) throws -> [[String: Tensor]] {
    try stride(from: 0, to: samples, by: batch).map { start in
        let rows = min(batch, samples - start)
        return try data.mapValues { t in
            let rowBytes = t.byteCount / max(samples, 1)
            let slice = try Tensor(uninitialized: t.dtype, shape: [rows] + t.shape.dropFirst())
            slice.storage.pointer.copyMemory(from: t.storage.pointer + start * rowBytes, byteCount: rows * rowBytes)
            return slice
        }
    }
}

func labelValues(_ labels: Tensor) throws -> [Int] {
    guard let values = integers(labels) else { throw KerfError.shapeMismatch("labels must be int64 or int32, got \(labels.dtype)") }
    return values
}

/// The elements of an int64 or int32 tensor (nil for other dtypes).
func integers(_ t: Tensor) -> [Int]? {
    switch t.dtype {
    case .int64: return t.array(of: Int64.self).map { Int($0) }
    case .int32: return t.array(of: Int32.self).map { Int($0) }
    default: return nil
    }
}

/// The class each sample gets from a model output: the value itself for integer outputs
/// (a classifier's label), the arg-max of each row for float scores [samples, classes].
func predictions(_ y: Tensor) throws -> [Int] {
    if let labels = integers(y) { return labels }
    guard y.dtype == .float else {
        throw KerfError.unsupported("accuracy needs an integer label or float score output, got \(y.dtype)")
    }
    let scores = y.array(of: Float.self)
    let rows = y.shape.first ?? 1
    guard rows > 0, scores.count % rows == 0, scores.count > 0 else { return [] }
    let classes = scores.count / rows
    return (0..<rows).map { i in
        var best = 0
        for c in 1..<classes where scores[i * classes + c] > scores[i * classes + best] { best = c }
        return best
    }
}

/// The fraction of samples whose prediction equals the label.
func accuracy(_ predicted: [Int], _ labels: [Int]) -> Double {
    guard predicted.count == labels.count, !labels.isEmpty else { return 0 }
    return Double(zip(predicted, labels).filter { $0 == $1 }.count) / Double(labels.count)
}

/// Running error statistics of values y against reference values y0, fed in pieces.
struct ErrorAccumulator {
    private(set) var squaredError = 0.0, referenceEnergy = 0.0, energy = 0.0, dot = 0.0, maxAbs = 0.0
    private(set) var count = 0

    mutating func add<C: Collection>(_ y: C, _ y0: C) where C.Element == Float {
        for (p, q) in zip(y, y0) {
            let d = Double(p) - Double(q)
            squaredError += d * d
            referenceEnergy += Double(q) * Double(q)
            energy += Double(p) * Double(p)
            dot += Double(p) * Double(q)
            maxAbs = max(maxAbs, abs(d))
        }
        count += min(y.count, y0.count)
    }

    /// ||y - y0|| / ||y0|| (the plain norm of the error when y0 is all zero).
    var relativeError: Double { referenceEnergy > 0 ? (squaredError / referenceEnergy).squareRoot() : squaredError.squareRoot() }
    var cosine: Double {
        referenceEnergy > 0 && energy > 0 ? dot / (referenceEnergy * energy).squareRoot() : (referenceEnergy == energy ? 1 : 0)
    }
    /// Signal-to-quantization-noise ratio in dB, 10 log10(||y0||² / ||y - y0||²) (capped at 200 when exact).
    var sqnr: Double { squaredError > 0 ? min(200, 10 * log10(referenceEnergy / squaredError)) : 200 }
}

/// Relative L2 error, max abs error and cosine similarity of y against y0 (outputs joined).
func compare(_ y: [[Float]], _ y0: [[Float]]) -> (Double, Double, Double) {
    var e = ErrorAccumulator()
    for (a, b) in zip(y, y0) { e.add(a, b) }
    return (e.relativeError, e.maxAbs, e.cosine)
}
