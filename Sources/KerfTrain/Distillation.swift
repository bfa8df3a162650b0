import KerfCore
import KerfGraph
import KerfRuntime

/// One intermediate value of the student trained towards one of the teacher's (FitNets,
/// TinyBERT, MiniLM): hidden states by MSE or cosine, attention distributions by KL.
public struct IntermediateMatch: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// Mean squared error; with `projection`, of the student's value times a learned matrix.
        case meanSquaredError = "mse"
        /// 1 − cosine along the last axis; with `projection` as for mse.
        case cosine
        /// KL(teacher ‖ student) of two attention distributions: both values come out of a
        /// Softmax over their last axis and are compared on its input (`attentionDistillation`).
        case attention
    }

    public var student: String
    public var teacher: String
    public var kind: Kind
    /// The term's weight in the loss (beside the output terms' 1, or α with labels).
    public var weight: Double

    public init(student: String, teacher: String, kind: Kind = .meanSquaredError, weight: Double = 1) {
        self.student = student
        self.teacher = teacher
        self.kind = kind
        self.weight = weight
    }
}

/// How a student model is trained to imitate a teacher (Hinton et al.'s knowledge
/// distillation): the teacher runs on each batch's inputs and its outputs are the student's
/// targets.
public struct DistillationOptions: Sendable {
    public enum OutputLoss: String, Sendable {
        /// T²·KL(softmax(teacher/T) ‖ softmax(student/T)) over the class axis 1 (classifiers).
        case klDivergence = "kl"
        /// Mean squared error (regression outputs, embeddings).
        case meanSquaredError = "mse"
        /// 1 − cosine similarity along the last axis (embeddings).
        case cosine
    }

    /// The (student value, teacher value) pairs the loss compares, any named values of the two
    /// graphs. Empty: every float graph output the two models share by name.
    public var outputs: [(student: String, teacher: String)]
    public var outputLoss: OutputLoss
    /// The softmax temperature T of `klDivergence`.
    public var temperature: Double
    /// With labels: loss = α·(distillation terms) + (1 − α)·cross-entropy(student, labels).
    public var alpha: Double
    /// The feed holding integer class labels for the first pair's student output (nil: the
    /// teacher alone supervises). Only with `klDivergence`.
    public var labels: String?
    /// Threads of the teacher's session; 0: one per core.
    public var teacherThreads: Int
    /// Intermediate values matched besides the outputs. A hidden state whose last dimension
    /// differs from the teacher's (both known from shape inference) is compared through a
    /// learned linear projection [student width, teacher width] (Xavier-uniform initialized,
    /// trained with the student, and left out of the written model).
    public var matches: [IntermediateMatch]

    public init(outputs: [(student: String, teacher: String)] = [], outputLoss: OutputLoss = .klDivergence, temperature: Double = 2,
                alpha: Double = 0.5, labels: String? = nil, teacherThreads: Int = 0, matches: [IntermediateMatch] = []) {
        self.outputs = outputs
        self.matches = matches
        self.outputLoss = outputLoss
        self.temperature = temperature
        self.alpha = alpha
        self.labels = labels
        self.teacherThreads = teacherThreads
    }
}

/// A student `Trainer` whose loss reads a teacher's outputs, and the teacher's session that
/// computes them per batch. The student must take every input the teacher takes.
///
/// With `klDivergence`, a compared value that comes out of a Softmax (through Identity nodes)
/// is distilled from that Softmax's input, the logits, in both models: a scikit-learn or
/// exported classifier that ends in probabilities is distilled on its logits.
public final class Distiller {
    public let trainer: Trainer
    public let options: DistillationOptions
    /// (student value the loss reads, teacher value, the feed name the teacher's value takes).
    public let pairs: [(student: String, teacher: String, feed: String)]
    private let teacher: Session
    private let teacherInputs: [String]
    private let studentInputs: Set<String>
    /// Bytes of teacher values `train` may hold for a whole data set given as arrays: the teacher
    /// then runs once per sample (in order, in batches) instead of once per sample and epoch.
    /// Larger values (or data from a callback) are computed per batch.
    public var teacherCacheLimit = 1 << 30
    /// Teacher runs so far.
    public private(set) var teacherRuns = 0
    private let student: Model
    /// The projection MatMuls of intermediate matches and their weights (in the trainer's model only).
    private let projections: (nodes: Set<String>, weights: Set<String>)

    public init(student: Model, teacher teacherModel: Model, options: DistillationOptions,
                parameters: ParameterSelection = ParameterSelection(), trainerOptions: TrainerOptions = TrainerOptions()) throws {
        self.options = options
        guard options.alpha >= 0 && options.alpha <= 1 else { throw KerfError.invalidArgument("alpha \(options.alpha) is not in [0, 1]") }
        guard options.temperature > 0 && options.temperature.isFinite else {
            throw KerfError.invalidArgument("temperature \(options.temperature) must be positive")
        }
        guard options.teacherThreads >= 0 else { throw KerfError.invalidArgument("teacher threads \(options.teacherThreads) must be >= 0") }
        if options.labels != nil && options.outputLoss != .klDivergence {
            throw KerfError.invalidArgument("labels go with the kl output loss (cross-entropy beside it), not with \(options.outputLoss.rawValue)")
        }
        let studentInputs = Set(student.graph.runtimeInputs.map(\.name)), teacherInputs = teacherModel.graph.runtimeInputs.map(\.name)
        self.studentInputs = studentInputs
        self.teacherInputs = teacherInputs
        let missing = teacherInputs.filter { !studentInputs.contains($0) }
        guard missing.isEmpty else {
            throw KerfError.invalidArgument("the teacher reads input(s) \(missing.map { "'\($0)'" }.joined(separator: ", ")) that the student does not have "
                                            + "(student inputs: \(studentInputs.sorted().joined(separator: ", ")))")
        }
        let named = try options.outputs.isEmpty ? Self.sharedFloatOutputs(student, teacherModel) : options.outputs
        let studentValues = student.graph.valueNames, teacherValues = teacherModel.graph.valueNames
        var pairs: [(student: String, teacher: String, feed: String)] = []
        func addPair(_ s: String, _ t: String) -> String {
            var feed = "teacher:" + t
            while studentValues.contains(feed) || options.labels == feed || pairs.contains(where: { $0.feed == feed }) { feed = "teacher:" + feed }
            pairs.append((s, t, feed))
            return feed
        }
        func check(_ pair: (student: String, teacher: String)) throws {
            guard studentValues.contains(pair.student) else { throw KerfError.invalidArgument("the student has no value '\(pair.student)'") }
            guard teacherValues.contains(pair.teacher) else { throw KerfError.invalidArgument("the teacher has no value '\(pair.teacher)'") }
        }
        var terms: [Loss.Term] = []
        for pair in named {
            try check(pair)
            let logits = options.outputLoss == .klDivergence
            let s = logits ? Self.logits(of: pair.student, in: student) : pair.student
            let t = logits ? Self.logits(of: pair.teacher, in: teacherModel) : pair.teacher
            let feed = addPair(s, t)
            switch options.outputLoss {
            case .klDivergence: terms.append(.distillation(output: s, teacher: feed, temperature: options.temperature))
            case .meanSquaredError: terms.append(.meanSquaredError(output: s, target: feed))
            case .cosine: terms.append(.cosineDistance(output: s, target: feed))
            }
        }

        // Intermediate matches; hidden states of other widths through projections added to a copy.
        let working = student.graph.copy()
        let names = NameAllocator(working)
        var matchTerms: [(weight: Double, term: Loss.Term)] = []
        var projectionNodes: Set<String> = [], projectionWeights: Set<String> = []
        let studentTypes = options.matches.isEmpty ? nil : student.inferTypes(), teacherTypes = options.matches.isEmpty ? nil : teacherModel.inferTypes()
        for (k, match) in options.matches.enumerated() {
            try check((match.student, match.teacher))
            guard match.weight.isFinite && match.weight >= 0 else { throw KerfError.invalidArgument("match weight \(match.weight) must be >= 0") }
            switch match.kind {
            case .attention:
                guard let s = Self.softmaxInput(of: match.student, in: student, lastAxis: true),
                      let t = Self.softmaxInput(of: match.teacher, in: teacherModel, lastAxis: true) else {
                    throw KerfError.invalidArgument("attention matching compares the outputs of Softmax nodes over their last axis; "
                                                    + "'\(match.student)' or '\(match.teacher)' is not one")
                }
                if let ss = studentTypes?.shape(of: s), let ts = teacherTypes?.shape(of: t),
                   ss.count != ts.count || zip(ss, ts).contains(where: { a, b in a.intValue != nil && b.intValue != nil && a != b }) {
                    throw KerfError.invalidArgument("attention matching compares maps of one shape: the student's '\(match.student)' is "
                                                    + "[\(ss.map(\.description).joined(separator: ", "))], the teacher's '\(match.teacher)' "
                                                    + "[\(ts.map(\.description).joined(separator: ", "))] (a student with fewer heads cannot match them one to one)")
                }
                matchTerms.append((match.weight, .attentionDistillation(output: s, teacher: addPair(s, t))))
            case .meanSquaredError, .cosine:
                let feed = addPair(match.student, match.teacher)
                var output = match.student
                if let sw = studentTypes?.shape(of: match.student)?.last?.intValue, let tw = teacherTypes?.shape(of: match.teacher)?.last?.intValue,
                   sw != tw {
                    let weight = names.make("kerf_projection_\(k)")
                    working.initializers.append(Initializer(name: weight, tensor: Initialization.xavierUniform.matrix(fanIn: sw, fanOut: tw, seed: UInt64(k))))
                    output = names.make(match.student + "_projected")
                    let node = Node(name: output, opType: "MatMul", inputs: [match.student, weight], outputs: [output])
                    working.nodes.append(node)
                    projectionNodes.insert(node.name)
                    projectionWeights.insert(weight)
                }
                matchTerms.append((match.weight, match.kind == .cosine ? .cosineDistance(output: output, target: feed)
                                                                         : .meanSquaredError(output: output, target: feed)))
            }
        }
        self.pairs = pairs
        projections = (projectionNodes, projectionWeights)
        self.student = student

        var weighted: [(weight: Double, term: Loss.Term)] = []
        if let labels = options.labels {
            weighted.append((1 - options.alpha, .crossEntropy(output: pairs[0].student, labels: labels, fromProbabilities: false, labelSmoothing: 0)))
            weighted += terms.map { (options.alpha, $0) }
        } else {
            weighted = terms.map { (1, $0) }
        }
        weighted += matchTerms
        trainer = try Trainer(model: projectionNodes.isEmpty ? student : student.replacing(graph: working), loss: Loss(terms: weighted),
                              parameters: parameters, options: trainerOptions)
        var sessionOptions = SessionOptions(threads: options.teacherThreads)
        sessionOptions.keptValues = pairs.map(\.teacher)
        teacher = try Session(model: teacherModel, options: sessionOptions)
    }

    /// The student's feeds from a batch: its inputs and the labels from `feeds` (other arrays are
    /// left out), and the teacher's values for them.
    public func complete(_ feeds: [String: Tensor]) throws -> [String: Tensor] {
        var completed = feeds.filter { studentInputs.contains($0.key) || $0.key == options.labels }
        for (pair, value) in zip(pairs, try teacherValues(feeds)) { completed[pair.feed] = value }
        return completed
    }

    /// The teacher's compared values for the inputs in `feeds`, in `pairs` order.
    private func teacherValues(_ feeds: [String: Tensor]) throws -> [Tensor] {
        var teacherFeeds: [String: Tensor] = [:]
        for name in teacherInputs {
            guard let t = feeds[name] else { throw KerfError.invalidArgument("the batch has no '\(name)', an input of the teacher") }
            teacherFeeds[name] = t
        }
        let values = try teacher.run(teacherFeeds, outputNames: pairs.map(\.teacher))
        teacherRuns += 1
        for (pair, value) in zip(pairs, values) where value.dtype != .float && value.dtype != .double {
            throw KerfError.invalidArgument("the teacher's '\(pair.teacher)' is \(value.dtype), not a float tensor to imitate")
        }
        return values
    }

    /// `data` with the teacher's values: for arrays whose teacher values fit `teacherCacheLimit`
    /// and have the samples on axis 0, arrays computed once here; otherwise computed per batch.
    private func withTeacherValues(_ data: TrainingData, batchSize: Int) throws -> TrainingData {
        guard case .arrays(let arrays) = data, let samples = try data.sampleCount(), batchSize >= 1 else { return .completed(data, complete) }
        var chunks: [[Tensor]] = []
        var bytes = 0
        for start in stride(from: 0, to: samples, by: batchSize) {
            let rows = Array(start..<min(start + batchSize, samples))
            let values = try teacherValues(try arrays.filter { teacherInputs.contains($0.key) }.mapValues { try gatherRows($0, rows) })
            bytes += values.reduce(0) { $0 + $1.count * $1.dtype.byteSize }
            guard bytes <= teacherCacheLimit, values.allSatisfy({ $0.rank >= 1 && $0.shape[0] == rows.count }) else {
                return .completed(data, complete)
            }
            chunks.append(values)
        }
        var cached = arrays.filter { studentInputs.contains($0.key) || $0.key == options.labels }
        for (k, pair) in pairs.enumerated() { cached[pair.feed] = try concatenatedRows(chunks.map { $0[k] }) }
        return .arrays(cached)
    }

    /// Trains the student on `data` (its inputs, and the labels when there are some) with the
    /// teacher's outputs as targets (for arrays, computed once before the first epoch when they
    /// fit `teacherCacheLimit`: the teacher must treat samples independently, as exported
    /// models in inference mode do); validation loss and accuracy (agreement with the labels, or
    /// with the teacher's top-1 class without labels) after each epoch. See `train`.
    public func train(data: TrainingData, validation: TrainingData? = nil, options loop: TrainingLoopOptions = TrainingLoopOptions(),
                      resumeFrom checkpoint: String? = nil) throws -> TrainingReport {
        try KerfTrain.train(trainer, data: try withTeacherValues(data, batchSize: loop.batchSize),
                            validation: try validation.map { try withTeacherValues($0, batchSize: loop.batchSize) },
                            options: loop, resumeFrom: checkpoint)
    }

    /// The graph outputs of both models with the same name and a float (or unknown) dtype, in
    /// the student's order.
    private static func sharedFloatOutputs(_ student: Model, _ teacher: Model) throws -> [(student: String, teacher: String)] {
        let teacherOutputs = Dictionary(teacher.graph.outputs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let shared = student.graph.outputs.filter { o in
            guard let t = teacherOutputs[o.name] else { return false }
            return [o.dtype, t.dtype].allSatisfy { $0 == nil || $0 == .float || $0 == .double }
        }
        guard !shared.isEmpty else {
            throw KerfError.invalidArgument("the student and the teacher share no float output by name; name the pairs to compare")
        }
        return shared.map { ($0.name, $0.name) }
    }

    /// The trained student as a model of the student's own graph: intermediate matches'
    /// projections left out.
    public func trainedStudent() -> Model {
        let trained = trainer.trainedModel()
        guard !projections.nodes.isEmpty else { return trained }
        let g = trained.graph
        g.nodes.removeAll { projections.nodes.contains($0.name) }
        g.initializers.removeAll { projections.weights.contains($0.name) }
        return trained
    }

    /// The logits behind `value`: the input of the Softmax over the class axis 1 it comes out
    /// of through Identity nodes, else `value` itself.
    static func logits(of value: String, in model: Model) -> String {
        softmaxInput(of: value, in: model, lastAxis: false) ?? value
    }

    /// The input of the Softmax `value` comes out of (through Identity nodes), when that Softmax
    /// normalizes over axis 1 (or, with `lastAxis`, over the last axis); else nil.
    static func softmaxInput(of value: String, in model: Model, lastAxis: Bool) -> String? {
        let graph = model.graph
        let producers = Dictionary(graph.nodes.flatMap { n in n.outputs.map { ($0, n) } }, uniquingKeysWith: { a, _ in a })
        var current = value
        while let node = producers[current], node.domain.isEmpty || node.domain == "ai.onnx", let input = node.inputs.first {
            if node.opType == "Identity" {
                current = input
                continue
            }
            guard node.opType == "Softmax", let rank = model.inferTypes().shape(of: input)?.count else { return nil }
            let opset = model.defaultOpset
            var axis = 1
            if case .int(let a)? = node.attribute("axis") { axis = Int(a) } else if opset >= 13 { axis = -1 }
            if axis < 0 { axis += rank }
            // Before opset 13 Softmax flattens the axes from `axis` on: the same as a single axis only at its last.
            let wanted = lastAxis ? rank - 1 : 1
            return axis == wanted && (axis == rank - 1 || opset >= 13) ? input : nil
        }
        return nil
    }
}
