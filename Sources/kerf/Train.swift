import ArgumentParser
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
    @Option(help: "cross-entropy, mse, l1, huber or bce-with-logits.") var loss: String = "cross-entropy"
    @Option(help: "The model output the loss reads (default: the last graph output).") var output: String?
    @Option(help: "The array of DATA holding labels (class indices or probabilities) or targets.") var labels: String = "y"
    @Flag(help: "Cross-entropy: the output holds probabilities (a model ending in Softmax), not logits.") var probabilities = false
    @Option(help: "Cross-entropy label smoothing in [0, 1].") var labelSmoothing: Double = 0
    @Option(help: "Huber delta.") var delta: Double = 1
    @Option(help: "Train from scratch: kaiming-uniform, kaiming-normal, xavier-uniform or xavier-normal.") var `init`: String?
    @OptionGroup var training: TrainingArguments

    func run() throws {
        try checkPlotPath(training.plot)
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
        let inputs = loaded.graph.runtimeInputs
        let trainArrays = try training.arrays(data, inputs: inputs, labels: labels)
        guard let samples = trainArrays.values.first?.shape.first, samples > 0 else { throw KerfError.invalidArgument("'\(data)' has no samples") }
        var initialization: Initialization?
        if let name = `init` {
            guard let i = Initialization(rawValue: String(name.map { $0 == "-" ? "_" : $0 })) else {
                throw KerfError.invalidArgument("--init must be kaiming-uniform, kaiming-normal, xavier-uniform or xavier-normal, got '\(name)'")
            }
            initialization = i
        }
        let qat = try training.quantizationAware(loaded, data: trainArrays)
        let trainer = try Trainer(model: qat?.model ?? loaded, loss: Loss(term), parameters: ParameterSelection(frozen: training.frozen),
                                  options: try training.trainerOptions(samples: samples, initialization: initialization))
        let validation = try training.validation.map { TrainingData.arrays(try training.arrays($0, inputs: inputs, labels: labels)) }
        let result = try train(trainer, data: .arrays(trainArrays), validation: validation, options: training.loopOptions("train"),
                               resumeFrom: training.resume)
        let destination = outputFile ?? model
        try training.finish(result, trained: trainer.trainedModel(), qat: qat, wrote: destination)
    }
}
