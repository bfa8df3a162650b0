import FoundationEssentials
import KerfCore
import KerfRuntime

/// Options of `sensitivity(_:data:labels:options:progress:)`.
public struct SensitivityOptions: Sendable {
    /// Sparsity levels tried on each weight, each in [0, 1).
    public var levels: [Double] = [0.5, 0.7, 0.9]
    /// Weights, node names or op types to leave out of the table.
    public var exclude = NameFilter()
    public var minElements = 0
    /// Rows of `data` per run when the model's batch dimension is not fixed.
    public var batchSize = 32
    /// Session settings for the runs (threads, optimization).
    public var session = SessionOptions()

    public init() {}
}

/// How much each weight, pruned alone by magnitude, changes the model: the input for
/// choosing per-tensor sparsities.
public struct SensitivityTable: Codable, Sendable {
    public struct Row: Codable, Sendable {
        public var tensor: String
        public var node: String
        public var opType: String
        public var elements: Int
        public var level: Double
        /// ||y - y0|| / ||y0|| over all float outputs, y0 the unpruned model's outputs.
        public var relativeError: Double
        public var maxAbsError: Double
        /// Cosine similarity of y and y0 (all float outputs flattened).
        public var cosine: Double
        /// Accuracy of the first output's predictions against the labels (nil without labels).
        public var accuracy: Double?
    }

    public var levels: [Double]
    /// Accuracy of the unpruned model (nil without labels).
    public var baselineAccuracy: Double?
    public var samples: Int
    public var rows: [Row] = []

    public func json() throws -> String { try snakeCaseJSON(self) }
}

/// Prunes each prunable weight of `model` alone to each level (layer-wise magnitude) and
/// measures the outputs on `data` (graph input name -> tensor whose first dimension counts
/// samples) against the unpruned model. `labels` (integer class per sample) adds accuracy.
/// `model` is not changed. Progress counts one step per (weight, level) run.
public func sensitivity(_ model: Model, data: [String: Tensor], labels: Tensor? = nil, options: SensitivityOptions = SensitivityOptions(),
                        progress: ProgressHandler? = nil) throws -> SensitivityTable {
    for level in options.levels where !(level.isFinite && level >= 0 && level < 1) {
        throw KerfError.invalidArgument("sensitivity levels must be in [0, 1), got \(level)")
    }
    guard options.batchSize > 0 else { throw KerfError.invalidArgument("batch size must be positive, got \(options.batchSize)") }
    let samples = try sampleCount(data, labels: labels)
    let batches = try batchFeeds(data, samples: samples, batch: fixedBatch(model.graph) ?? options.batchSize)
    let classes = try labels.map(labelValues)

    // A private graph: the caller's model is never touched, even on failure.
    let graph = Graph(name: model.graph.name, nodes: model.graph.nodes, inputs: model.graph.inputs, outputs: model.graph.outputs,
                      valueInfo: model.graph.valueInfo, initializers: model.graph.initializers)
    /// Float outputs joined over batches, and the class predicted per sample by output 0.
    func outputs() throws -> (values: [[Float]], predicted: [Int]) {
        let session = try Session(graph: graph, opsets: model.opsetImports, irVersion: model.irVersion, options: options.session)
        var joined: [[Float]] = [], predicted: [Int] = []
        for feeds in batches {
            let ys = try session.run(feeds)
            if joined.isEmpty { joined = Array(repeating: [], count: ys.count) }
            for (k, y) in ys.enumerated() where y.dtype == .float { joined[k] += y.array(of: Float.self) }
            if classes != nil, let y = ys.first { predicted += try predictions(y) }
        }
        return (joined, predicted)
    }

    var pruneOptions = PruneOptions()
    pruneOptions.exclude = options.exclude
    pruneOptions.minElements = options.minElements
    var skipped: [PruneReport.Skipped] = []
    let weights = prunableWeights(graph, options: pruneOptions, skipped: &skipped)
    let total = weights.count * options.levels.count
    let reference = try outputs()
    var table = SensitivityTable(levels: options.levels, baselineAccuracy: classes.map { accuracy(reference.predicted, $0) },
                                 samples: samples)
    if let progress, !progress(0, total, "baseline") { throw KerfError.cancelled("sensitivity analysis cancelled") }
    for w in weights {
        let original = graph.initializers[w.index].tensor
        guard original.withElements(as: Float.self, { $0.allSatisfy(\.isFinite) }) else {
            throw KerfError.invalidModel("weight '\(w.name)' contains NaN or infinity")
        }
        defer { graph.initializers[w.index].tensor = original }
        for level in options.levels {
            var pruned = original
            let count = Int((level * Double(original.count)).rounded())
            pruned.withMutableElements(as: Float.self) { zeroSmallest($0, count: count) }
            graph.initializers[w.index].tensor = pruned
            let y = try outputs()
            var row = SensitivityTable.Row(tensor: w.name, node: w.node.name, opType: w.node.opType, elements: original.count,
                                           level: level, relativeError: 0, maxAbsError: 0, cosine: 1)
            (row.relativeError, row.maxAbsError, row.cosine) = compare(y.values, reference.values)
            row.accuracy = classes.map { accuracy(y.predicted, $0) }
            table.rows.append(row)
            if let progress, !progress(table.rows.count, total, "\(w.name) at \(level)") {
                throw KerfError.cancelled("sensitivity analysis cancelled")
            }
        }
    }
    return table
}
