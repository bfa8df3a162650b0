import KerfCore
import KerfGraph
import KerfRuntime

/// How a `Trainer` updates and runs: the optimizer and its schedule, parameter groups,
/// clipping, accumulation, and the threads and graph optimizations of its sessions.
public struct TrainerOptions: Sendable {
    public var optimizer: OptimizerKind
    public var schedule: LearningRateSchedule
    /// Groups with their own learning rate or weight decay (e.g. none for biases and norms).
    /// Each name matches a parameter, or every parameter read by a node of that name or op type.
    public var groups: [ParameterGroup]
    /// Clip the global L2 norm of the gradients to this before each update (nil: no clipping).
    public var maxGradientNorm: Double?
    /// Update every this many `step` calls, with the mean of their gradients (1: every call).
    public var accumulationSteps: Int
    /// Threads per run and per update; 0: one per core.
    public var threads: Int
    /// The sessions' graph optimization level (0: differentiate and run the graph as written;
    /// 1: torch's decomposed LayerNorm and GELU and its Linear layers fused first, and the
    /// session optimizations).
    public var optimizationLevel: Int
    /// Start from fresh parameter values (`Initialization`) instead of the model's; nil keeps them.
    public var initialization: Initialization?
    public var initializationSeed: UInt64
    /// Which ops run in training mode (BatchNormalization on batch statistics, Dropout masks),
    /// as PyTorch's `model.train()`; evaluation always runs the graph as exported.
    public var trainingMode: TrainingModeOptions
    /// Keep the exact zeros of every trained weight of rank >= 2 that has zeros and nonzeros
    /// (pruned elements, N:M patterns, removed channels): their gradients are masked before each
    /// update and the zeros restored after it, so momentum and Adam state cannot move them and
    /// the trained file has exactly the sparsity it started with. Biases and norm scales
    /// (rank 1) and all-zero weights (zero initializations) train freely.
    public var keepSparsity: Bool
    /// Prune the weights gradually while training (nil: no pruning).
    public var gradualPruning: GradualPruning?

    public init(optimizer: OptimizerKind = .sgd(SGD(lr: 0.01)), schedule: LearningRateSchedule = .constant,
                groups: [ParameterGroup] = [], maxGradientNorm: Double? = nil, accumulationSteps: Int = 1,
                threads: Int = 0, optimizationLevel: Int = 1, initialization: Initialization? = nil, initializationSeed: UInt64 = 0,
                trainingMode: TrainingModeOptions = TrainingModeOptions(), keepSparsity: Bool = false,
                gradualPruning: GradualPruning? = nil) {
        self.trainingMode = trainingMode
        self.keepSparsity = keepSparsity
        self.gradualPruning = gradualPruning
        self.initialization = initialization
        self.initializationSeed = initializationSeed
        self.optimizer = optimizer
        self.schedule = schedule
        self.groups = groups
        self.maxGradientNorm = maxGradientNorm
        self.accumulationSteps = accumulationSteps
        self.threads = threads
        self.optimizationLevel = optimizationLevel
    }

    func validate() throws {
        try optimizer.validate()
        try schedule.validate()
        if let m = maxGradientNorm, !(m > 0) { throw KerfError.invalidArgument("max gradient norm \(m) must be positive") }
        guard accumulationSteps >= 1 else { throw KerfError.invalidArgument("accumulation steps \(accumulationSteps) must be at least 1") }
        guard threads >= 0 else { throw KerfError.invalidArgument("threads \(threads) must be >= 0") }
        try gradualPruning?.validate()
    }

    var resolvedThreads: Int { threads > 0 ? threads : SessionOptions(threads: 0).resolvedThreads }
}

/// Trains a model's initializers: each step runs forward, loss and backward in one session
/// and updates the parameters it owns. The model it was made from is not modified;
/// `trainedModel()` is a copy with the trained values.
///
/// The training graph is built at the first run, when the dtypes of the loss's targets are
/// known from the feeds (integer class indices or float class probabilities). Not thread-safe:
/// one thread at a time.
public final class Trainer {
    public let loss: Loss
    public let options: TrainerOptions
    private let model: Model
    private let selection: ParameterSelection
    private var compiled: Compiled?
    /// Current values of the trained parameters (copies the trainer owns), by name.
    private var values: [String: Tensor] = [:]
    /// The gradients of the last `backward`, by parameter name.
    private var lastGradients: [String: Tensor] = [:]

    private struct Compiled {
        let training: TrainingGraph
        let session: Session
        let evaluation: Session
        let targetTypes: [String: (dtype: DType, rank: Int)]
        let optimizer: Optimizer
    }
    private var scheduler: LearningRateScheduler?
    /// Gradients summed over the `step` calls since the last update (accumulation).
    private var accumulated: [String: Tensor] = [:]
    private var accumulatedCalls = 0
    /// Optimizer updates so far.
    public private(set) var stepCount = 0
    /// Running statistics (BatchNormalization mean/var) by initializer name, updated by every
    /// training-mode forward run.
    private var state: [String: Tensor] = [:]
    /// Training-mode forward runs so far: each draws its Dropout masks from its own seed.
    private var forwardCount = 0
    /// With `keepSparsity` or gradual pruning: per weight with exact zeros, 1 where it may change
    /// and 0 where it stays 0.
    private var sparsityMasks: [String: [Float]] = [:]
    /// The gradual pruning schedule with its end step resolved, and the weights it prunes.
    private var pruning: (schedule: GradualPruning, weights: [String])?
    /// Movement pruning: each pruned weight's score −Σ g·w over the updates so far.
    private var movementScores: [String: [Float]] = [:]
    /// Optimizer updates the run will make, when known (set by `train` for arrays); gradual
    /// pruning without an end step ends at three quarters of it.
    public var plannedSteps: Int?

    public init(model: Model, loss: Loss, parameters: ParameterSelection = ParameterSelection(), options: TrainerOptions = TrainerOptions()) throws {
        self.model = model
        self.loss = loss
        selection = parameters
        self.options = options
        try options.validate()
        let inputs = Set(model.graph.inputs.map(\.name))
        try loss.validate(outputs: Set(model.graph.outputs.map(\.name)), values: model.graph.valueNames, inputs: inputs)
    }

    /// The trained parameters' names, in the model's order (builds the graph from `feeds` if
    /// no run has yet).
    public func parameterNames(feeds: [String: Tensor]) throws -> [String] { try prepared(feeds).training.parameters }

    /// The trained parameters' names in the model's order; empty before the first run.
    public var parameterNamesIfBuilt: [String] { compiled?.training.parameters ?? [] }

    /// Copies of the parameters' current values (empty before the first run).
    public func parameters() -> [String: Tensor] { values.mapValues(Self.copy) }

    /// Copies of the gradients of the last `backward` or `step`.
    public func gradients() -> [String: Tensor] { lastGradients.mapValues(Self.copy) }

    /// Runs forward, loss and backward on `feeds` (model inputs and the loss's targets);
    /// keeps the gradients and returns the loss. Throws, keeping nothing, when the loss is not
    /// finite.
    @discardableResult
    public func backward(_ feeds: [String: Tensor]) throws -> Double {
        let c = try prepared(feeds)
        var all = try runFeeds(feeds, c)
        if let seed = c.training.dropoutSeed {
            all[seed] = Tensor(scalar: options.trainingMode.seed &+ Int64(forwardCount) &* 0x2545_F491_4F6C_DD1D)
        }
        let results = try c.session.run(all)
        let lossValue = try Self.scalar(results[0], what: "the loss")
        guard lossValue.isFinite else {
            throw KerfError.invalidArgument("the loss is \(lossValue) on this batch; the parameters are unchanged")
        }
        var gradients: [String: Tensor] = [:]
        var k = 1
        for p in c.training.parameters where c.training.gradientNames[p] != nil {
            gradients[p] = results[k]
            k += 1
        }
        for name in c.training.state where c.training.stateUpdates[name] != nil {
            state[name] = results[k]
            k += 1
        }
        lastGradients = gradients
        forwardCount += 1
        return lossValue
    }

    /// One training step: forward, loss and backward on `feeds`, then (every
    /// `accumulationSteps` calls) an optimizer update with the scheduled learning rate, after
    /// which the schedule advances, as `optimizer.step(); scheduler.step()` in PyTorch. Returns
    /// the loss before the update. A non-finite loss throws and changes nothing.
    @discardableResult
    public func step(_ feeds: [String: Tensor]) throws -> Double {
        let loss = try backward(feeds)
        let c = try prepared(feeds)
        if options.accumulationSteps > 1 {
            for (name, g) in lastGradients {
                if let sum = accumulated[name] { try addInPlace(sum, g) } else { accumulated[name] = Self.copy(g) }
            }
            accumulatedCalls += 1
            guard accumulatedCalls == options.accumulationSteps else { return loss }
            let scale = Float(1) / Float(accumulatedCalls)
            for g in accumulated.values { scaleInPlace(g, scale) }
            try update(c, gradients: accumulated)
            accumulated = [:]
            accumulatedCalls = 0
        } else {
            try update(c, gradients: lastGradients)
        }
        return loss
    }

    /// The learning rate of the first parameter group for the next update.
    public var learningRate: Double {
        if let scheduler { return scheduler.learningRate }
        return (try? LearningRateScheduler(options.schedule, baseLR: options.optimizer.learningRate))?.learningRate
            ?? options.optimizer.learningRate
    }

    private func update(_ c: Compiled, gradients: [String: Tensor]) throws {
        let names = c.training.parameters.filter { gradients[$0] != nil }
        for name in names where values[name]?.dtype != .float {
            throw KerfError.unsupported("parameter '\(name)' is \(values[name]?.dtype.description ?? "?"); the optimizers update float32 parameters")
        }
        for name in names { if let mask = sparsityMasks[name], let g = gradients[name] { maskInPlace(g, mask) } }
        if let maxNorm = options.maxGradientNorm {
            let buffers = names.compactMap { gradients[$0] }.map { g in
                UnsafeMutableBufferPointer(start: g.storage.pointer.assumingMemoryBound(to: Float.self), count: g.count)
            }
            try clipGradientNorm(buffers, maxNorm: maxNorm, threads: options.resolvedThreads)
        }
        if let pruning, pruning.schedule.criterion == .movement { accumulateMovement(pruning.weights, gradients) }
        if scheduler == nil { scheduler = try LearningRateScheduler(options.schedule, optimizer: c.optimizer) }
        try scheduler?.apply(to: c.optimizer)
        for name in names {
            guard let p = values[name], let g = gradients[name] else { continue }
            try c.optimizer.update(name, parameter: UnsafeMutableBufferPointer(start: p.storage.pointer.assumingMemoryBound(to: Float.self), count: p.count),
                                   gradient: UnsafeBufferPointer(start: g.storage.pointer.assumingMemoryBound(to: Float.self), count: g.count))
            if let mask = sparsityMasks[name] { maskInPlace(p, mask) }
        }
        try scheduler?.step()
        stepCount += 1
        if let pruning, let sparsity = pruning.schedule.sparsity(afterUpdates: stepCount) { prune(pruning.weights, to: sparsity) }
    }

    /// Prunes each of `weights` to `sparsity` by magnitude or movement score; their masks follow.
    private func prune(_ weights: [String], to sparsity: Double) {
        for name in weights {
            guard let value = values[name] else { continue }
            sparsityMasks[name] = pruneToSparsity(value, sparsity, scores: movementScores[name])
        }
    }

    /// Adds −g·w of this update to each of `weights`' movement scores.
    private func accumulateMovement(_ weights: [String], _ gradients: [String: Tensor]) {
        for name in weights {
            guard let w = values[name], let g = gradients[name], w.count == g.count else { continue }
            var scores = movementScores[name] ?? [Float](repeating: 0, count: w.count)
            let wp = w.storage.pointer.assumingMemoryBound(to: Float.self), gp = g.storage.pointer.assumingMemoryBound(to: Float.self)
            for i in 0..<scores.count { scores[i] -= gp[i] * wp[i] }
            movementScores[name] = scores
        }
    }

    /// The masks of the current values' zeros: of every weight of rank >= 2 with zeros and other
    /// values (keepSparsity), and of the weights gradual pruning prunes.
    private func recomputeMasks() {
        let pruned = Set(pruning?.weights ?? [])
        sparsityMasks = [:]
        for (name, value) in values where value.rank >= 2 && (options.keepSparsity || pruned.contains(name)) {
            sparsityMasks[name] = nonzeroMask(value)
        }
    }

    /// The loss on `feeds` with the current parameters (forward only).
    public func evaluate(_ feeds: [String: Tensor]) throws -> Double {
        let c = try prepared(feeds)
        return try Self.scalar(try c.evaluation.run(try runFeeds(feeds, c))[0], what: "the loss")
    }

    /// Overwrites parameter `name` with `value` (same dtype and shape).
    public func setParameter(_ name: String, _ value: Tensor) throws {
        guard let current = values[name] else { throw KerfError.invalidArgument("'\(name)' is not a trained parameter") }
        guard current.dtype == value.dtype, current.shape == value.shape else {
            throw KerfError.shapeMismatch("parameter '\(name)' is \(current.dtype) \(current.shape), not \(value.dtype) \(value.shape)")
        }
        values[name] = Self.copy(value)
    }

    /// The model with the trained values in place of the initial ones (a copy; the graph is
    /// the model's own, an inference graph).
    public func trainedModel() -> Model {
        let g = model.graph.copy()
        for i in g.initializers.indices {
            if let v = values[g.initializers[i].name] ?? state[g.initializers[i].name] {
                var initializer = Initializer(name: g.initializers[i].name, tensor: Self.copy(v))
                initializer.docString = g.initializers[i].docString
                g.initializers[i] = initializer
            }
        }
        return model.replacing(graph: g)
    }

    /// The loss on one batch, its sample count (axis 0 of the first loss target), and for a
    /// cross-entropy (distillation) first term the number of samples whose top-1 class is the
    /// label's (the teacher's).
    func evaluateBatch(_ feeds: [String: Tensor]) throws -> (loss: Double, samples: Int, correct: Int?) {
        let c = try prepared(feeds)
        let results = try c.evaluation.run(try runFeeds(feeds, c))
        let lossValue = try Self.scalar(results[0], what: "the loss")
        let target = loss.targetNames.first.flatMap { feeds[$0] }
        let samples = target.map { $0.rank >= 1 ? $0.shape[0] : 1 } ?? 1
        guard let labels = loss.terms.first?.term.classification?.reference, results.count > 1, let labelTensor = feeds[labels] else {
            return (lossValue, samples, nil)
        }
        return (lossValue, samples, try correctPredictions(results[1], labels: labelTensor))
    }

    // MARK: Checkpoint support

    func compiledForCheckpoint() throws -> (training: TrainingGraph, optimizer: Optimizer, targetTypes: [String: (dtype: DType, rank: Int)]) {
        guard let c = compiled else { throw KerfError.invalidArgument("nothing to checkpoint: the trainer has not run yet") }
        return (c.training, c.optimizer, c.targetTypes)
    }

    func parameterValue(_ name: String) -> Tensor? { values[name] }
    /// Movement pruning's scores, as tensors of their weights' shapes.
    func movementScoreTensors() -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        for (name, scores) in movementScores { if let v = values[name] { tensors[name] = Tensor(shape: v.shape, values: scores) } }
        return tensors
    }
    func stateValues() -> [String: Tensor] { state }
    var forwardRuns: Int { forwardCount }
    func schedulerState() -> [String: Tensor]? { scheduler?.state() }
    func accumulatedGradients() -> [String: Tensor] { accumulated }
    var accumulatedCallCount: Int { accumulatedCalls }

    /// Rebuilds the training graph for `targetTypes` and installs the state of a checkpoint;
    /// changes nothing when any part does not fit.
    func restoreState(targetTypes: [String: (dtype: DType, rank: Int)], parameters: [String: Tensor], optimizer: [String: Tensor],
                      schedule: [String: Tensor], accumulated restoredSums: [String: Tensor], stepCount restoredSteps: Int,
                      accumulatedCalls restoredCalls: Int, state restoredState: [String: Tensor], forwardRuns: Int,
                      movementScores restoredScores: [String: Tensor] = [:]) throws {
        let c = try compile(targetTypes: targetTypes)
        guard Set(parameters.keys) == Set(c.training.parameters) else {
            throw KerfError.invalidArgument("the checkpoint's parameters (\(parameters.count)) are not this trainer's (\(c.training.parameters.count))")
        }
        for (name, value) in parameters {
            guard let current = values[name], current.dtype == value.dtype, current.shape == value.shape else {
                throw KerfError.shapeMismatch("the checkpoint's '\(name)' is \(value.dtype) \(value.shape)")
            }
        }
        guard restoredSteps >= 0, restoredCalls >= 0, restoredCalls < options.accumulationSteps else {
            throw KerfError.invalidArgument("the checkpoint's step counts do not fit these options")
        }
        var newScheduler = try LearningRateScheduler(options.schedule, optimizer: c.optimizer)
        if !schedule.isEmpty { try newScheduler.restore(schedule) }
        try c.optimizer.restore(optimizer)
        guard Set(restoredState.keys) == Set(c.training.state) else {
            throw KerfError.invalidArgument("the checkpoint's running statistics are not this trainer's")
        }
        for (name, value) in restoredState where state[name]?.shape != value.shape || state[name]?.dtype != value.dtype {
            throw KerfError.shapeMismatch("the checkpoint's running statistic '\(name)' is \(value.dtype) \(value.shape)")
        }
        for (name, value) in restoredScores where parameters[name]?.shape != value.shape || value.dtype != .float {
            throw KerfError.shapeMismatch("the checkpoint's movement scores of '\(name)' are \(value.dtype) \(value.shape)")
        }
        values = parameters.mapValues(Self.copy)
        state = restoredState.mapValues(Self.copy)
        forwardCount = forwardRuns
        scheduler = schedule.isEmpty ? nil : newScheduler
        accumulated = restoredSums.mapValues(Self.copy)
        accumulatedCalls = restoredCalls
        stepCount = restoredSteps
        movementScores = restoredScores.mapValues { $0.array(of: Float.self) }
        recomputeMasks()
    }

    // MARK: Internals

    /// Mutable access to the parameters and their gradients for an optimizer.
    func withParametersAndGradients(_ body: (_ name: String, _ parameter: Tensor, _ gradient: Tensor) throws -> Void) rethrows {
        for (name, gradient) in lastGradients {
            if let p = values[name] { try body(name, p, gradient) }
        }
    }

    private func prepared(_ feeds: [String: Tensor]) throws -> Compiled {
        var targetTypes: [String: (dtype: DType, rank: Int)] = [:]
        for name in loss.targetNames {
            guard let t = feeds[name] else { throw KerfError.invalidArgument("the loss's target '\(name)' was not fed") }
            targetTypes[name] = (t.dtype, t.rank)
        }
        if let c = compiled {
            for (name, type) in targetTypes {
                guard let first = c.targetTypes[name], first == type else {
                    let began = c.targetTypes[name].map { "\($0.dtype) of rank \($0.rank)" } ?? "?"
                    throw KerfError.invalidArgument("'\(name)' is fed as \(type.dtype) of rank \(type.rank), but training began with \(began)")
                }
            }
            return c
        }
        return try compile(targetTypes: targetTypes)
    }

    /// Builds the training graph, sessions and optimizer for targets of these types, and takes
    /// the initial parameter values from the model.
    private func compile(targetTypes: [String: (dtype: DType, rank: Int)]) throws -> Compiled {
        if let c = compiled { return c }
        let training = try TrainingGraph(model: model, loss: loss, parameters: selection, targetTypes: targetTypes,
                                         trainingMode: options.trainingMode, fusesExportPatterns: options.optimizationLevel > 0)
        var sessionOptions = SessionOptions(threads: options.threads, optimizationLevel: options.optimizationLevel)
        sessionOptions.teamKernels = true  // nearly every other step is a oneDNN GEMM or convolution
        let session = try Session(graph: training.graph, opsets: training.opsets, options: sessionOptions)
        let evaluation = try Session(graph: training.evaluationGraph, opsets: training.opsets, options: sessionOptions)
        var shapes: [String: [Int]] = [:]
        for p in training.parameters {
            guard let initializer = model.graph.initializer(named: p) else { continue }
            values[p] = Self.copy(initializer.tensor)
            shapes[p] = initializer.tensor.shape
        }
        for name in training.state {
            if let initializer = model.graph.initializer(named: name) { state[name] = Self.copy(initializer.tensor) }
        }
        if let initialization = options.initialization {
            let fresh = try initialization.values(for: values, in: model.graph, seed: options.initializationSeed)
            for (name, value) in fresh { values[name] = value }
        }
        if let schedule = options.gradualPruning {
            let weights = training.parameters.filter { name in
                guard let v = values[name], v.dtype == .float, case .weight = ParameterRole(of: name, shape: v.shape, in: model.graph) else { return false }
                return true
            }
            pruning = (try schedule.resolved(plannedSteps: plannedSteps), weights)
        }
        recomputeMasks()
        if let pruning, let sparsity = pruning.schedule.sparsity(afterUpdates: 0), sparsity > 0 { prune(pruning.weights, to: sparsity) }
        let groups = try options.groups.map { group -> ParameterGroup in
            var resolved = group
            resolved.names = try selection.resolveEntries(group.names, in: model.graph).filter { shapes[$0] != nil }
            return resolved
        }
        let optimizer = try Optimizer(options.optimizer, parameters: shapes, groups: groups, threads: options.resolvedThreads)
        let c = Compiled(training: training, session: session, evaluation: evaluation, targetTypes: targetTypes, optimizer: optimizer)
        compiled = c
        return c
    }

    private func runFeeds(_ feeds: [String: Tensor], _ c: Compiled) throws -> [String: Tensor] {
        var all = feeds
        let inputs = model.graph.runtimeInputs.map(\.name), targets = loss.targetNames
        for name in feeds.keys where !inputs.contains(name) && !targets.contains(name) {
            if c.training.parameters.contains(name) { throw KerfError.invalidArgument("'\(name)' is a trained parameter, not a feed") }
            throw KerfError.invalidArgument("'\(name)' is neither an input of the model (\(inputs.joined(separator: ", "))) "
                                            + "nor a target of the loss (\(targets.joined(separator: ", ")))")
        }
        for p in c.training.parameters { all[p] = values[p] }
        for name in c.training.state { all[name] = state[name] }
        return all
    }

    static func copy(_ t: Tensor) -> Tensor { Tensor(dtype: t.dtype, shape: t.shape, storage: t.storage.copy()) }

    private static func scalar(_ t: Tensor, what: String) throws -> Double {
        guard t.count == 1 else { throw KerfError.shapeMismatch("\(what) has \(t.count) elements, not 1") }
        switch t.dtype {
        case .float: return Double(t.withElements(as: Float.self) { $0[0] })
        case .double: return t.withElements(as: Double.self) { $0[0] }
        default: throw KerfError.invalidArgument("\(what) is \(t.dtype), not a float")
        }
    }
}
