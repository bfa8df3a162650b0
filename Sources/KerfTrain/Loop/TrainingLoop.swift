import KerfCore

/// How `train` loops over the data.
public struct TrainingLoopOptions {
    public var epochs: Int
    /// Stop after this many optimizer steps in all (nil: run every epoch).
    public var maxSteps: Int?
    /// Samples per batch for `.arrays` data.
    public var batchSize: Int
    /// Shuffle `.arrays` training data each epoch (seeded by `seed`).
    public var shuffle: Bool
    public var seed: UInt64
    /// Stop when the validation loss has not improved for this many epochs (nil: never).
    public var patience: Int?
    /// With validation data: end with the parameters of the epoch of lowest validation loss.
    public var restoreBest: Bool
    /// Called after each step; return false to cancel (the call then throws `.cancelled`, and
    /// the trainer keeps the parameters of the last completed step).
    public var progress: ((TrainingProgress) -> Bool)?
    /// Write a checkpoint here every `checkpointEvery` steps and at the end of each epoch.
    public var checkpointPath: String?
    public var checkpointEvery: Int

    public init(epochs: Int = 1, maxSteps: Int? = nil, batchSize: Int = 32, shuffle: Bool = true, seed: UInt64 = 0,
                patience: Int? = nil, restoreBest: Bool = true, progress: ((TrainingProgress) -> Bool)? = nil,
                checkpointPath: String? = nil, checkpointEvery: Int = 0) {
        self.epochs = epochs
        self.maxSteps = maxSteps
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.seed = seed
        self.patience = patience
        self.restoreBest = restoreBest
        self.progress = progress
        self.checkpointPath = checkpointPath
        self.checkpointEvery = checkpointEvery
    }

    func validate() throws {
        guard epochs >= 1 else { throw KerfError.invalidArgument("epochs \(epochs) must be at least 1") }
        guard batchSize >= 1 else { throw KerfError.invalidArgument("batch size \(batchSize) must be at least 1") }
        if let maxSteps, maxSteps < 1 { throw KerfError.invalidArgument("max steps \(maxSteps) must be at least 1") }
        if let patience, patience < 1 { throw KerfError.invalidArgument("patience \(patience) must be at least 1") }
        guard checkpointEvery >= 0 else { throw KerfError.invalidArgument("checkpoint interval must be >= 0") }
    }
}

/// What the progress callback sees after each step.
public struct TrainingProgress: Sendable {
    public var step: Int
    /// Total steps when known (array data), else nil.
    public var totalSteps: Int?
    public var epoch: Int
    public var loss: Double
    public var learningRate: Double
}

/// One epoch's results.
public struct EpochRecord: Sendable, Equatable, Codable {
    public var epoch: Int
    /// Mean training loss over the epoch's batches (as the parameters were at each step).
    public var loss: Double
    public var validationLoss: Double?
    /// Top-1 accuracy on the validation data, for a first loss term that is cross-entropy (or
    /// distillation: agreement with the teacher's top-1 class).
    public var validationAccuracy: Double?
    public var steps: Int
    public var seconds: Double
}

/// What `train` did.
public struct TrainingReport: Sendable, Codable {
    public var epochs: [EpochRecord] = []
    /// The epoch of lowest validation loss (whose parameters the trainer holds when
    /// `restoreBest`), nil without validation data.
    public var bestEpoch: Int?
    public var steps = 0
    public var secondsPerStep = 0.0
    public var stoppedEarly = false
    /// The trained parameters' names.
    public var parameters: [String] = []
    /// The exact zeros of each trained weight of rank >= 2 at the end, in parameter order.
    public var sparsity: [WeightSparsity] = []

    public struct WeightSparsity: Sendable, Codable, Equatable {
        public var name: String
        public var elements: Int
        /// The fraction of the elements that are exactly zero.
        public var sparsity: Double
    }

    /// The report as JSON with snake_case keys (absent values omitted).
    public func json() throws -> String { try snakeCaseJSON(self) }
}
