import ArgumentParser
import FoundationEssentials
import KerfCore
import KerfTrain

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model's weights on data (fine-tuning, or from scratch with --init).",
        discussion: """
            DATA.npz holds one array per model input and one for the labels or targets (named by \
            --labels), samples along the first axis. The loss reads the model output named by --output. \
            Without -o the model is rewritten in place, atomically; the file is untouched on failure. \
            Optimizers and schedules follow torch.optim's update rules and defaults.
            """)

    @Argument(help: "The ONNX model file.") var model: String
    @Option(name: .shortAndLong, help: "Where to write the trained model (default: rewrite MODEL in place).") var outputFile: String?
    @Option(help: "An .npz file of training data (model inputs and the labels/targets).") var data: String
    @Option(help: "An .npz file of validation data, evaluated after each epoch.") var validation: String?
    @Option(help: "cross-entropy, mse, l1, huber or bce-with-logits.") var loss: String = "cross-entropy"
    @Option(help: "The model output the loss reads (default: the last graph output).") var output: String?
    @Option(help: "The array of DATA holding labels (class indices or probabilities) or targets.") var labels: String = "y"
    @Flag(help: "Cross-entropy: the output holds probabilities (a model ending in Softmax), not logits.") var probabilities = false
    @Option(help: "Cross-entropy label smoothing in [0, 1].") var labelSmoothing: Double = 0
    @Option(help: "Huber delta.") var delta: Double = 1
    @Option(help: "sgd, adam or adamw.") var optimizer: String = "sgd"
    @Option(help: "Learning rate (default: 0.01 for SGD, 1e-3 for Adam/AdamW).") var lr: Double?
    @Option(help: "SGD momentum.") var momentum: Double = 0
    @Flag(help: "SGD Nesterov momentum.") var nesterov = false
    @Option(help: "Weight decay (default: 0; AdamW 0.01).") var weightDecay: Double?
    @Option(help: "constant, cosine, step, exponential, warmup-linear, warmup-cosine or one-cycle.") var schedule: String = "constant"
    @Option(help: "Warmup steps of warmup-* schedules.") var warmupSteps: Int = 0
    @Option(help: "step: steps between decays.") var stepSize: Int = 1
    @Option(help: "step / exponential: the decay factor.") var gamma: Double = 0.1
    @Option(help: "Clip the gradients' global L2 norm to this.") var maxGradNorm: Double?
    @Option(help: "Epochs over DATA.") var epochs: Int = 1
    @Option(help: "Samples per batch.") var batchSize: Int = 32
    @Option(help: "Seed of the shuffling (and of --init).") var seed: UInt64 = 0
    @Option(help: "Stop after this many epochs without a better validation loss.") var patience: Int?
    @Option(help: "Train from scratch: kaiming-uniform, kaiming-normal, xavier-uniform or xavier-normal.") var `init`: String?
    @Option(parsing: .upToNextOption, help: "Initializer names, node names or op types to keep fixed.") var frozen: [String] = []
    @Flag(help: "Train with the graph as exported (PyTorch's model.eval()): BatchNormalization on its running statistics, no Dropout.") var evalMode = false
    @Option(help: "Write a checkpoint here after each epoch.") var checkpoint: String?
    @Option(help: "Continue a run from this checkpoint.") var resume: String?
    @Option(help: "Threads per run (0 = one per core).") var threads: Int = 0
    @Option(help: "Also write the report as JSON to this file.") var report: String?
    @Option(help: "Also draw the training curves (losses and validation accuracy per epoch) as an SVG chart.") var plot: String?

    func run() throws {
        try checkPlotPath(plot)
        let loaded = try Model.load(path: model)
        guard let outputName = output ?? loaded.graph.outputs.last?.name else { throw KerfError.invalidArgument("the model has no outputs") }
        let term: Loss.Term
        switch loss {
        case "cross-entropy": term = .crossEntropy(output: outputName, labels: labels, fromProbabilities: probabilities, labelSmoothing: labelSmoothing)
        case "mse": term = .meanSquaredError(output: outputName, target: labels)
        case "l1": term = .l1(output: outputName, target: labels)
        case "huber": term = .huber(output: outputName, target: labels, delta: delta)
        case "bce-with-logits": term = .binaryCrossEntropyWithLogits(output: outputName, target: labels)
        default: throw KerfError.invalidArgument("--loss must be cross-entropy, mse, l1, huber or bce-with-logits, got '\(loss)'")
        }
        let optimizerKind: OptimizerKind
        switch optimizer {
        case "sgd": optimizerKind = .sgd(SGD(lr: lr ?? 0.01, momentum: momentum, nesterov: nesterov, weightDecay: weightDecay ?? 0))
        case "adam": optimizerKind = .adam(Adam(lr: lr ?? 1e-3, weightDecay: weightDecay ?? 0))
        case "adamw": optimizerKind = .adam(Adam.adamW(lr: lr ?? 1e-3, weightDecay: weightDecay ?? 1e-2))
        default: throw KerfError.invalidArgument("--optimizer must be sgd, adam or adamw, got '\(optimizer)'")
        }
        let inputs = loaded.graph.runtimeInputs.map(\.name)
        let trainArrays = try arrays(data, inputs: inputs)
        guard let samples = trainArrays.values.first?.shape.first, samples > 0 else { throw KerfError.invalidArgument("'\(data)' has no samples") }
        let totalSteps = (samples + batchSize - 1) / max(batchSize, 1) * epochs
        let learningSchedule: LearningRateSchedule
        switch schedule {
        case "constant": learningSchedule = .constant
        case "cosine": learningSchedule = .cosineAnnealing(tMax: totalSteps)
        case "step": learningSchedule = .step(stepSize: stepSize, gamma: gamma)
        case "exponential": learningSchedule = .exponential(gamma: gamma)
        case "warmup-linear": learningSchedule = .linearWarmup(warmupSteps: warmupSteps, totalSteps: totalSteps, then: .linear)
        case "warmup-cosine": learningSchedule = .linearWarmup(warmupSteps: warmupSteps, totalSteps: totalSteps, then: .cosine)
        case "one-cycle": learningSchedule = .oneCycle(totalSteps: totalSteps)
        default: throw KerfError.invalidArgument("--schedule must be constant, cosine, step, exponential, warmup-linear, warmup-cosine or one-cycle, got '\(schedule)'")
        }
        var initialization: Initialization?
        if let name = `init` {
            guard let i = Initialization(rawValue: String(name.map { $0 == "-" ? "_" : $0 })) else {
                throw KerfError.invalidArgument("--init must be kaiming-uniform, kaiming-normal, xavier-uniform or xavier-normal, got '\(name)'")
            }
            initialization = i
        }
        let options = TrainerOptions(optimizer: optimizerKind, schedule: learningSchedule, maxGradientNorm: maxGradNorm, threads: threads,
                                     initialization: initialization, initializationSeed: seed,
                                     trainingMode: TrainingModeOptions(batchNormalization: !evalMode, dropout: !evalMode, seed: Int64(bitPattern: seed)))
        let trainer = try Trainer(model: loaded, loss: Loss(term), parameters: ParameterSelection(frozen: frozen), options: options)
        let bar = ProgressBar("train")
        let loop = TrainingLoopOptions(epochs: epochs, batchSize: batchSize, seed: seed, patience: patience,
                                       progress: { p in bar.update(p.step, p.totalSteps ?? 0, "epoch \(p.epoch + 1) loss \(decimal(p.loss, places: 4))") },
                                       checkpointPath: checkpoint)
        let result = try train(trainer, data: .arrays(trainArrays), validation: try validation.map { .arrays(try arrays($0, inputs: inputs)) },
                               options: loop, resumeFrom: resume)
        let destination = outputFile ?? model
        try trainer.trainedModel().save(path: destination)
        if let report { try FileIO.writeAtomically(Data(try result.json().utf8), to: report) }
        if let plot { try FileIO.writeAtomically(Data(curves(result).utf8), to: plot) }
        print(table(result))
        print("wrote \(destination)")
    }

    /// The arrays of an .npz file by feed name. An array named after no model input or the
    /// labels feeds the model's one input that has no array of its name, when there is one each.
    private func arrays(_ path: String, inputs: [String]) throws -> [String: Tensor] {
        var arrays = Dictionary(try NumpyFile.readArchive(path: path).map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        let unmatched = arrays.keys.filter { !inputs.contains($0) && $0 != labels }
        let unfed = inputs.filter { arrays[$0] == nil }
        if unmatched.count == 1, unfed.count == 1 {
            arrays[unfed[0]] = arrays.removeValue(forKey: unmatched[0])
        }
        return arrays
    }

    /// Training and validation loss per epoch, validation accuracy on the right-hand axis.
    private func curves(_ r: TrainingReport) -> String {
        func series(_ name: String, rightAxis: Bool = false, dashed: Bool = false, _ value: (EpochRecord) -> Double?) -> ChartSeries? {
            let points = r.epochs.compactMap { e in value(e).map { (x: Double(e.epoch + 1), y: $0) } }
            return points.isEmpty ? nil : ChartSeries(name: name, points: points, rightAxis: rightAxis, dashed: dashed)
        }
        let lines = [series("training loss") { $0.loss }, series("validation loss", dashed: true) { $0.validationLoss },
                     series("validation accuracy", rightAxis: true) { $0.validationAccuracy }].compactMap { $0 }
        return lineChartSVG(title: "Training (\(r.steps) steps)", xLabel: "epoch", yLabel: "loss",
                            rightLabel: lines.contains(where: \.rightAxis) ? "accuracy" : nil, series: lines)
    }

    /// The per-epoch table for a terminal.
    private func table(_ r: TrainingReport) -> String {
        var lines = ["epoch  train loss  valid loss  valid acc  seconds"]
        for e in r.epochs {
            let best = e.epoch == r.bestEpoch ? "  *" : ""
            lines.append("\(String(e.epoch + 1).padding(to: 5))  \(decimal(e.loss, places: 4).padding(to: 10))  "
                         + "\((e.validationLoss.map { decimal($0, places: 4) } ?? "-").padding(to: 10))  "
                         + "\((e.validationAccuracy.map { decimal($0, places: 4) } ?? "-").padding(to: 9))  "
                         + decimal(e.seconds, places: 2) + best)
        }
        lines.append("\(r.steps) steps, \(decimal(r.secondsPerStep * 1000, places: 3)) ms per step"
                     + (r.stoppedEarly ? ", stopped early" : "") + (r.bestEpoch.map { ", best epoch \($0 + 1) (*)" } ?? ""))
        return lines.joined(separator: "\n")
    }
}
