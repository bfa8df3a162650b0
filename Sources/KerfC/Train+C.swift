import FoundationEssentials
import KerfCore
import KerfCShims
import KerfTrain
#if canImport(Glibc)
import Glibc
#endif

extension kerf_train_options: OptionsStruct {
    static let cName = "kerf_train_options"
    /// ABI 1.9: up to progress_user_data.
    static let firstSize = size(through: \.progress_user_data)
    static let unsizedInitSize = size(through: \.progress_user_data)
    static var defaults: kerf_train_options {
        var o = kerf_train_options()
        o.struct_size = currentSize
        o.reduction = Int32(KERF_REDUCTION_MEAN)
        o.optimizer = Int32(KERF_OPTIMIZER_SGD)
        o.lr = -1
        o.weight_decay = -1
        o.beta1 = 0.9
        o.beta2 = 0.999
        o.eps = 1e-8
        o.accumulation_steps = 1
        o.schedule = Int32(KERF_SCHEDULE_CONSTANT)
        o.step_size = 1
        o.gamma = 0.1
        o.pct_start = 0.3
        o.div_factor = 25
        o.final_div_factor = 1e4
        o.optimization_level = 1
        o.training_mode = 1
        o.epochs = 1
        o.batch_size = 32
        o.shuffle = 1
        o.restore_best = 1
        o.keep_sparsity = 1
        o.qat_range_momentum = 0.99
        return o
    }
}

/// The object behind a `kerf_trainer *`: the trainer and its parameter names as C strings.
final class TrainerHandle {
    let trainer: Trainer
    private var names: [UnsafeMutablePointer<CChar>] = []

    init(_ trainer: Trainer) { self.trainer = trainer }
    deinit { names.forEach { free($0) } }

    /// The parameter names as C strings, refreshed when the trainer built its graph.
    func parameterNames() -> [UnsafeMutablePointer<CChar>] {
        let current = trainer.parameterNamesIfBuilt
        if names.count != current.count {
            names.forEach { free($0) }
            names = current.map { strdup($0)! }
        }
        return names
    }
}

@c @implementation
public func kerf_train_options_init_sized(_ options: UnsafeMutablePointer<kerf_train_options>?, _ size: Int) -> kerf_status {
    fillOptions(options, size: size)
}

/// The loss, parameter selection and trainer options of a C options struct.
private func trainerParts(_ c: kerf_train_options) throws -> (Loss, ParameterSelection, TrainerOptions) {
    try argument(c.n_loss > 0 && c.loss != nil, "options->loss is empty: name at least one loss term")
    let (selection, options) = try trainerSettings(c)
    return (try loss(c), selection, options)
}

/// The loss terms of a C options struct.
private func loss(_ c: kerf_train_options) throws -> Loss {
    try argument(c.n_loss < 1 << 16, "options->n_loss \(c.n_loss) is out of range")
    var terms: [(weight: Double, term: Loss.Term)] = []
    for i in 0..<c.n_loss {
        let t = c.loss![i]
        let output = try string(t.output, "options->loss[\(i)].output"), target = try string(t.target, "options->loss[\(i)].target")
        let term: Loss.Term
        switch Int(t.kind) {
        case KERF_LOSS_CROSS_ENTROPY:
            term = .crossEntropy(output: output, labels: target, fromProbabilities: t.from_probabilities != 0, labelSmoothing: t.label_smoothing)
        case KERF_LOSS_MSE: term = .meanSquaredError(output: output, target: target)
        case KERF_LOSS_L1: term = .l1(output: output, target: target)
        case KERF_LOSS_HUBER: term = .huber(output: output, target: target, delta: t.delta)
        case KERF_LOSS_BCE_WITH_LOGITS: term = .binaryCrossEntropyWithLogits(output: output, target: target)
        default: throw KerfError.invalidArgument("options->loss[\(i)].kind \(t.kind) is not a KERF_LOSS_* kind")
        }
        terms.append((t.weight, term))
    }
    let reduction: Loss.Reduction
    switch Int(c.reduction) {
    case KERF_REDUCTION_MEAN: reduction = .mean
    case KERF_REDUCTION_SUM: reduction = .sum
    default: throw KerfError.invalidArgument("options->reduction \(c.reduction) is not a KERF_REDUCTION_* value")
    }
    return Loss(terms: terms, reduction: reduction)
}

/// The parameter selection and trainer options (optimizer, schedule, threads, ...) of a C options struct.
func trainerSettings(_ c: kerf_train_options) throws -> (ParameterSelection, TrainerOptions) {
    let optimizer: OptimizerKind
    switch Int(c.optimizer) {
    case KERF_OPTIMIZER_SGD:
        optimizer = .sgd(SGD(lr: c.lr < 0 ? 0.01 : c.lr, momentum: c.momentum, dampening: c.dampening, nesterov: c.nesterov != 0,
                             weightDecay: c.weight_decay < 0 ? 0 : c.weight_decay))
    case KERF_OPTIMIZER_ADAM, KERF_OPTIMIZER_ADAMW:
        let decoupled = Int(c.optimizer) == KERF_OPTIMIZER_ADAMW
        optimizer = .adam(Adam(lr: c.lr < 0 ? 1e-3 : c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps,
                               weightDecay: c.weight_decay < 0 ? (decoupled ? 1e-2 : 0) : c.weight_decay, amsgrad: c.amsgrad != 0,
                               decoupledWeightDecay: decoupled))
    default: throw KerfError.invalidArgument("options->optimizer \(c.optimizer) is not a KERF_OPTIMIZER_* value")
    }
    let schedule: LearningRateSchedule
    switch Int(c.schedule) {
    case KERF_SCHEDULE_CONSTANT: schedule = .constant
    case KERF_SCHEDULE_STEP: schedule = .step(stepSize: Int(clamping: c.step_size), gamma: c.gamma)
    case KERF_SCHEDULE_MULTI_STEP:
        try argument(c.n_milestones < 1 << 20 && (c.n_milestones == 0 || c.milestones != nil), "options->milestones is NULL")
        schedule = .multiStep(milestones: (0..<c.n_milestones).map { Int(clamping: c.milestones![$0]) }, gamma: c.gamma)
    case KERF_SCHEDULE_EXPONENTIAL: schedule = .exponential(gamma: c.gamma)
    case KERF_SCHEDULE_COSINE: schedule = .cosineAnnealing(tMax: Int(clamping: c.t_max), etaMin: c.eta_min)
    case KERF_SCHEDULE_WARMUP_LINEAR, KERF_SCHEDULE_WARMUP_COSINE:
        schedule = .linearWarmup(warmupSteps: Int(clamping: c.warmup_steps), totalSteps: Int(clamping: c.total_steps),
                                 then: Int(c.schedule) == KERF_SCHEDULE_WARMUP_LINEAR ? .linear : .cosine, finalFraction: c.final_fraction)
    case KERF_SCHEDULE_ONE_CYCLE:
        schedule = .oneCycle(maxLR: c.max_lr > 0 ? c.max_lr : nil, totalSteps: Int(clamping: c.total_steps), pctStart: c.pct_start,
                             divFactor: c.div_factor, finalDivFactor: c.final_div_factor)
    default: throw KerfError.invalidArgument("options->schedule \(c.schedule) is not a KERF_SCHEDULE_* value")
    }
    let noDecay = try strings(c.no_decay, c.n_no_decay, "options->no_decay")
    let trainable = try strings(c.trainable, c.n_trainable, "options->trainable")
    let frozen = try strings(c.frozen, c.n_frozen, "options->frozen")
    try argument(c.accumulation_steps >= 1, "options->accumulation_steps \(c.accumulation_steps) must be at least 1")
    try argument(c.threads >= 0, "options->threads \(c.threads) must be >= 0")
    let initialization: Initialization?
    switch Int(c.initialization) {
    case KERF_INIT_NONE: initialization = nil
    case KERF_INIT_KAIMING_UNIFORM: initialization = .kaimingUniform
    case KERF_INIT_KAIMING_NORMAL: initialization = .kaimingNormal
    case KERF_INIT_XAVIER_UNIFORM: initialization = .xavierUniform
    case KERF_INIT_XAVIER_NORMAL: initialization = .xavierNormal
    default: throw KerfError.invalidArgument("options->initialization \(c.initialization) is not a KERF_INIT_* value")
    }
    let options = TrainerOptions(optimizer: optimizer, schedule: schedule,
                                 groups: noDecay.isEmpty ? [] : [ParameterGroup(names: noDecay, weightDecay: 0)],
                                 maxGradientNorm: c.max_grad_norm > 0 ? c.max_grad_norm : nil,
                                 accumulationSteps: Int(c.accumulation_steps), threads: Int(c.threads),
                                 optimizationLevel: Int(c.optimization_level), initialization: initialization,
                                 initializationSeed: c.initialization_seed,
                                 trainingMode: TrainingModeOptions(batchNormalization: c.training_mode != 0, dropout: c.training_mode != 0,
                                                                   seed: Int64(bitPattern: c.seed),
                                                                   quantizationRangeMomentum: Float(c.qat_range_momentum)),
                                 keepSparsity: c.keep_sparsity != 0, gradualPruning: try gradualPruning(c))
    return (ParameterSelection(trainable: trainable.isEmpty ? nil : trainable, frozen: frozen), options)
}

@c @implementation
public func kerf_trainer_create(_ model: OpaquePointer?, _ options: UnsafePointer<kerf_train_options>?,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> kerf_status {
    out?.pointee = nil
    return guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        try argument(out != nil, "out is NULL")
        try argument(options != nil, "options is NULL: a trainer needs a loss")
        let c = try readOptions(options)
        try argument(c.qat == nil, "options->qat is for kerf_train and kerf_distill; a kerf_trainer trains the model as it is")
        let (loss, selection, trainerOptions) = try trainerParts(c)
        let trainer = try Trainer(model: m.model, loss: loss, parameters: selection, options: trainerOptions)
        out!.pointee = HandleRegistry.shared.register(TrainerHandle(trainer))
    }
}

@c @implementation
public func kerf_trainer_free(_ trainer: OpaquePointer?) {
    HandleRegistry.shared.release(trainer, as: TrainerHandle.self)
}

/// The feeds of a trainer call: names[i] -> the tensor of handle feeds[i].
private func trainerFeeds(_ names: UnsafePointer<UnsafePointer<CChar>?>?, _ feeds: UnsafePointer<OpaquePointer?>?,
                          _ count: Int) throws -> [String: Tensor] {
    try argument(count >= 0 && count < 1 << 20, "n_feeds \(count) is out of range")
    try argument(count == 0 || (names != nil && feeds != nil), "names or feeds is NULL")
    var out: [String: Tensor] = [:]
    for i in 0..<count {
        let name = try string(names![i], "names[\(i)]")
        try argument(out[name] == nil, "'\(name)' is fed twice")
        out[name] = try HandleRegistry.shared.resolve(feeds![i], as: TensorHandle.self, "feeds[\(i)]").tensor
    }
    return out
}

/// One trainer call on feeds, its loss stored in `loss` (when not NULL).
private func trainerCall(_ trainer: OpaquePointer?, _ names: UnsafePointer<UnsafePointer<CChar>?>?,
                         _ feeds: UnsafePointer<OpaquePointer?>?, _ count: Int, _ loss: UnsafeMutablePointer<Double>?,
                         _ body: (Trainer, [String: Tensor]) throws -> Double) -> kerf_status {
    guarded {
        let t = try HandleRegistry.shared.resolve(trainer, as: TrainerHandle.self, "trainer")
        let value = try body(t.trainer, try trainerFeeds(names, feeds, count))
        loss?.pointee = value
    }
}

@c @implementation
public func kerf_trainer_step(_ trainer: OpaquePointer?, _ names: UnsafePointer<UnsafePointer<CChar>?>?,
                              _ feeds: UnsafePointer<OpaquePointer?>?, _ count: Int, _ loss: UnsafeMutablePointer<Double>?) -> kerf_status {
    trainerCall(trainer, names, feeds, count, loss) { try $0.step($1) }
}

@c @implementation
public func kerf_trainer_backward(_ trainer: OpaquePointer?, _ names: UnsafePointer<UnsafePointer<CChar>?>?,
                                  _ feeds: UnsafePointer<OpaquePointer?>?, _ count: Int, _ loss: UnsafeMutablePointer<Double>?) -> kerf_status {
    trainerCall(trainer, names, feeds, count, loss) { try $0.backward($1) }
}

@c @implementation
public func kerf_trainer_evaluate(_ trainer: OpaquePointer?, _ names: UnsafePointer<UnsafePointer<CChar>?>?,
                                  _ feeds: UnsafePointer<OpaquePointer?>?, _ count: Int, _ loss: UnsafeMutablePointer<Double>?) -> kerf_status {
    trainerCall(trainer, names, feeds, count, loss) { try $0.evaluate($1) }
}

@c @implementation
public func kerf_trainer_parameter_count(_ trainer: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?) -> kerf_status {
    guarded {
        let t = try HandleRegistry.shared.resolve(trainer, as: TrainerHandle.self, "trainer")
        try store(out, t.trainer.parameterNamesIfBuilt.count, "out")
    }
}

@c @implementation
public func kerf_trainer_parameter_name(_ trainer: OpaquePointer?, _ index: Int,
                                        _ out: UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> kerf_status {
    out?.pointee = nil
    return guarded {
        let t = try HandleRegistry.shared.resolve(trainer, as: TrainerHandle.self, "trainer")
        let names = t.parameterNames()
        try argument(index >= 0 && index < names.count, "index \(index) is out of range (\(names.count) parameters)")
        try store(out, UnsafePointer(names[index]), "out")
    }
}

/// A copy of parameter `name` (or its gradient) as a new tensor handle in `out`.
private func trainerTensor(_ trainer: OpaquePointer?, _ name: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?,
                           gradient: Bool) -> kerf_status {
    out?.pointee = nil
    return guarded {
        let t = try HandleRegistry.shared.resolve(trainer, as: TrainerHandle.self, "trainer")
        let n = try string(name, "name")
        try argument(out != nil, "out is NULL")
        let values = gradient ? t.trainer.gradients() : t.trainer.parameters()
        guard let value = values[n] else {
            throw KerfError.invalidArgument(gradient ? "parameter '\(n)' has no gradient (yet)" : "'\(n)' is not a trained parameter (or the trainer has not run)")
        }
        out!.pointee = HandleRegistry.shared.register(TensorHandle(value))
    }
}

@c @implementation
public func kerf_trainer_parameter(_ trainer: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> kerf_status {
    trainerTensor(trainer, name, out, gradient: false)
}

@c @implementation
public func kerf_trainer_gradient(_ trainer: OpaquePointer?, _ name: UnsafePointer<CChar>?,
                                  _ out: UnsafeMutablePointer<OpaquePointer?>?) -> kerf_status {
    trainerTensor(trainer, name, out, gradient: true)
}

@c @implementation
public func kerf_trainer_progress(_ trainer: OpaquePointer?, _ steps: UnsafeMutablePointer<Int64>?,
                                  _ learningRate: UnsafeMutablePointer<Double>?) -> kerf_status {
    guarded {
        let t = try HandleRegistry.shared.resolve(trainer, as: TrainerHandle.self, "trainer")
        steps?.pointee = Int64(t.trainer.stepCount)
        learningRate?.pointee = t.trainer.learningRate
    }
}

@c @implementation
public func kerf_trainer_model(_ trainer: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> kerf_status {
    out?.pointee = nil
    return guarded {
        let t = try HandleRegistry.shared.resolve(trainer, as: TrainerHandle.self, "trainer")
        try argument(out != nil, "out is NULL")
        out!.pointee = HandleRegistry.shared.register(ModelHandle(t.trainer.trainedModel()))
    }
}

@c @implementation
public func kerf_trainer_checkpoint(_ trainer: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> kerf_status {
    guarded {
        let t = try HandleRegistry.shared.resolve(trainer, as: TrainerHandle.self, "trainer")
        try t.trainer.checkpoint(to: try string(path, "path"))
    }
}

@c @implementation
public func kerf_trainer_restore(_ trainer: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> kerf_status {
    guarded {
        let t = try HandleRegistry.shared.resolve(trainer, as: TrainerHandle.self, "trainer")
        try t.trainer.restore(from: try string(path, "path"))
    }
}

/// Named arrays of a C options struct (names[i] -> the tensor of handle tensors[i]).
private func namedArrays(_ names: UnsafePointer<UnsafePointer<CChar>?>?, _ tensors: UnsafePointer<OpaquePointer?>?,
                         _ count: Int, _ what: String) throws -> [String: Tensor] {
    let n = try strings(names, count, "options->\(what)_names")
    try argument(count == 0 || tensors != nil, "options->\(what) is NULL but its count is \(count)")
    var out: [String: Tensor] = [:]
    for (i, name) in n.enumerated() {
        out[name] = try HandleRegistry.shared.resolve(tensors![i], as: TensorHandle.self, "options->\(what)[\(i)]").tensor
    }
    return out
}

/// Batches from a C batch callback: feeds for the model's runtime inputs and the loss's targets.
private func callbackBatches(_ fn: kerf_batch_fn, _ user: UnsafeMutableRawPointer?, names: [String]) -> TrainingData {
    .batches { epoch, index in
        try feedsFromCallback(names: names, callback: "batch", "batch \(index) of epoch \(epoch)") { fn(user, Int64(epoch), Int64(index), $0, names.count, $1) }
    }
}

/// The gradual pruning schedule of a C options struct (nil when gradual_sparsity is 0).
private func gradualPruning(_ c: kerf_train_options) throws -> GradualPruning? {
    guard c.gradual_sparsity != 0 else { return nil }
    try argument(c.gradual_start_step >= 0 && c.gradual_end_step >= 0 && c.gradual_every >= 0,
                 "options->gradual_start_step, gradual_end_step and gradual_every must be >= 0")
    let criterion: GradualPruning.Criterion
    switch Int(c.gradual_criterion) {
    case KERF_GRADUAL_MAGNITUDE: criterion = .magnitude
    case KERF_GRADUAL_MOVEMENT: criterion = .movement
    default: throw KerfError.invalidArgument("options->gradual_criterion \(c.gradual_criterion) is not a KERF_GRADUAL_* value")
    }
    return GradualPruning(finalSparsity: c.gradual_sparsity, initialSparsity: c.gradual_initial_sparsity,
                          startStep: Int(clamping: c.gradual_start_step),
                          endStep: c.gradual_end_step > 0 ? Int(clamping: c.gradual_end_step) : nil,
                          frequency: c.gradual_every > 0 ? Int(clamping: c.gradual_every) : nil, criterion: criterion)
}

/// What kerf_train and kerf_distill read besides the loss and the trainer: the data (arrays or
/// a batch callback asked for `feedNames`), validation arrays, the loop's options, the checkpoint
/// to resume from.
func loopParts(_ c: kerf_train_options, feedNames: [String])
    throws -> (data: TrainingData, validation: TrainingData?, loop: TrainingLoopOptions, resume: String?) {
    let data: TrainingData
    if let batches = c.batches {
        try argument(c.n_data == 0, "options->batches and options->data are both given")
        data = callbackBatches(batches, c.batches_user_data, names: feedNames)
    } else {
        try argument(c.n_data > 0, "options->data is empty and options->batches is NULL: no training data")
        data = .arrays(try namedArrays(c.data_names, c.data, c.n_data, "data"))
    }
    let validation = c.n_validation > 0 ? TrainingData.arrays(try namedArrays(c.validation_names, c.validation, c.n_validation, "validation")) : nil
    try argument(c.epochs >= 1 && c.batch_size >= 1 && c.max_steps >= 0 && c.patience >= 0 && c.checkpoint_every >= 0,
                 "options->epochs, batch_size, max_steps, patience or checkpoint_every is out of range")
    let progress: ((TrainingProgress) -> Bool)? = c.progress.map { fn in
        let user = c.progress_user_data
        return { p in fn(user, Int64(p.step), Int64(p.totalSteps ?? 0), Int64(p.epoch), p.loss, p.learningRate) == 0 }
    }
    let loop = TrainingLoopOptions(epochs: Int(clamping: c.epochs), maxSteps: c.max_steps > 0 ? Int(clamping: c.max_steps) : nil,
                                   batchSize: Int(clamping: c.batch_size), shuffle: c.shuffle != 0, seed: c.seed,
                                   patience: c.patience > 0 ? Int(clamping: c.patience) : nil, restoreBest: c.restore_best != 0,
                                   progress: progress, checkpointPath: c.checkpoint_path.map { String(cString: $0) },
                                   checkpointEvery: Int(clamping: c.checkpoint_every))
    return (data, validation, loop, c.resume_from.map { String(cString: $0) })
}

@c @implementation
public func kerf_train(_ model: OpaquePointer?, _ options: UnsafePointer<kerf_train_options>?,
                       _ report: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> kerf_status {
    report?.pointee = nil
    return guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        try argument(options != nil, "options is NULL: training needs a loss and data")
        let c = try readOptions(options)
        let (loss, selection, trainerOptions) = try trainerParts(c)
        let parts = try loopParts(c, feedNames: m.model.graph.runtimeInputs.map(\.name) + loss.targetNames)
        let qat = try QuantizationAwareRun(c, model: m.model, data: parts.data)
        let trainer = try Trainer(model: qat?.prepared.model ?? m.model, loss: loss, parameters: selection, options: trainerOptions)
        let result = try train(trainer, data: parts.data, validation: parts.validation, options: parts.loop, resumeFrom: parts.resume)
        try storeString(try writeBack(trainer.trainedModel(), into: m.model, qat: qat, report: try result.json()), report)
    }
}
