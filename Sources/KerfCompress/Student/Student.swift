import FoundationEssentials
import KerfCore
import KerfGraph

/// How `makeStudent` derives a smaller model from a teacher, initialized from the teacher's
/// own weights (DistilBERT's recipe), for distillation to train.
public struct StudentOptions: Sendable {
    /// Which repeated layers to remove (their indices as the exporter numbered them).
    public enum Layers: Sendable, Equatable {
        /// Keep every layer.
        case none
        /// Remove layers 1, 3, 5, ...: keep every other layer, starting with the first.
        case everyOther
        /// Remove these.
        case indices([Int])
    }

    public var dropLayers: Layers
    /// With a value f in (0, 1): also remove the fraction f of each prunable channel group
    /// (feed-forward channels, attention heads, convolution channels) by channel pruning.
    public var narrow: Double?
    /// Channel pruning's other settings (criterion, exclusions) when `narrow` is set.
    public var pruneOptions: PruneOptions

    public init(dropLayers: Layers = .everyOther, narrow: Double? = nil, pruneOptions: PruneOptions = PruneOptions()) {
        self.dropLayers = dropLayers
        self.narrow = narrow
        self.pruneOptions = pruneOptions
    }
}

/// What `makeStudent` did.
public struct StudentReport: Codable, Sendable {
    public struct Layer: Codable, Sendable {
        public var index: Int
        public var nodes: Int
        public var parameters: Int
        public var dropped: Bool
    }

    public var layers: [Layer] = []
    /// The channel pruning report when `narrow` was set.
    public var narrowed: PruneReport?
    public var parametersBefore = 0
    public var parametersAfter = 0
    public var bytesBefore = 0
    public var bytesAfter = 0

    public func json() throws -> String { try snakeCaseJSON(self) }
}

/// Turns `model` (a copy of the teacher) into a student in place: removes repeated layers (the
/// readers of a removed layer's output read its input instead: the residual stream skips it),
/// then narrows the remaining channel groups. The model is unchanged when it throws.
public func makeStudent(_ model: Model, options: StudentOptions = StudentOptions()) throws -> StudentReport {
    var report = StudentReport()
    report.bytesBefore = try model.serialized().count
    report.parametersBefore = model.graph.initializers.reduce(0) { $0 + $1.tensor.count }
    let g = model.graph.copy()
    var dropped = Set<Int>()
    if options.dropLayers != .none {
        let layers = try g.repeatedLayers()
        switch options.dropLayers {
        case .none: break
        case .everyOther: dropped = Set(layers.enumerated().filter { $0.offset % 2 == 1 }.map(\.element.index))
        case .indices(let wanted):
            let known = Set(layers.map(\.index))
            if let bad = wanted.first(where: { !known.contains($0) }) {
                throw KerfError.invalidArgument("the model has no layer \(bad) (layers: \(layers.map { String($0.index) }.joined(separator: ", ")))")
            }
            dropped = Set(wanted)
        }
        guard dropped.count < layers.count else { throw KerfError.invalidArgument("dropping every layer leaves no model") }
        report.layers = layers.map { .init(index: $0.index, nodes: $0.nodes.count, parameters: $0.parameters, dropped: dropped.contains($0.index)) }
        try remove(layers.filter { dropped.contains($0.index) }, from: g)
    }
    let student = model.replacing(graph: g)
    if let narrow = options.narrow {
        guard narrow > 0 && narrow < 1 else { throw KerfError.invalidArgument("narrow must be in (0, 1), got \(narrow)") }
        var prune = options.pruneOptions
        prune.method = .channel
        prune.sparsity = narrow
        report.narrowed = try KerfCompress.prune(student, options: prune)
    }
    model.graph = student.graph
    report.parametersAfter = model.graph.initializers.reduce(0) { $0 + $1.tensor.count }
    report.bytesAfter = try model.serialized().count
    return report
}

/// Removes `layers` (each one block on the stream, as `repeatedLayers` found them) from `g`.
private func remove(_ layers: [ModelLayer], from g: Graph) throws {
    guard !layers.isEmpty else { return }
    var replacement: [String: String] = [:]
    func resolve(_ name: String) -> String {
        var r = name
        while let next = replacement[r] { r = next }
        return r
    }
    for layer in layers.sorted(by: { $0.index < $1.index }) { replacement[layer.output] = resolve(layer.input) }
    let removed = Set(layers.flatMap(\.nodes))
    var nodes: [Node] = []
    for (i, n) in g.nodes.enumerated() where !removed.contains(i) {
        var n = n
        n.inputs = n.inputs.map { replacement[$0] != nil ? resolve($0) : $0 }
        nodes.append(n)
    }
    let names = NameAllocator(g)
    for output in g.outputs where replacement[output.name] != nil {
        nodes.append(Node(name: names.make(output.name + "_Identity"), opType: "Identity", inputs: [resolve(output.name)], outputs: [output.name]))
    }
    g.nodes = nodes
    g.removeUnreadInitializers()
    let values = g.valueNames
    g.valueInfo.removeAll { !values.contains($0.name) }
}
