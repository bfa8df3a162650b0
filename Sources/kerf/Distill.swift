import ArgumentParser
import KerfCore
import KerfTrain

struct Distill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a student model to imitate a teacher (knowledge distillation).",
        discussion: """
            The teacher runs on every batch of DATA.npz (the student's inputs, samples along the first axis; \
            no labels needed) and the student learns its outputs: T²·KL of the softmaxes at temperature T \
            (on the logits behind a Softmax output), or MSE, or cosine distance. With --labels the loss is \
            alpha·distillation + (1 − alpha)·cross-entropy. A pruned student keeps exactly its zeros. \
            With --qat the student trains with fake quantization and is written as int8 (prune, QAT and \
            distillation in one run). Without -o the student is rewritten in place, atomically; the file is untouched on failure.
            """)

    @Argument(help: "The teacher ONNX model.") var teacher: String
    @Argument(help: "The student ONNX model (takes the teacher's inputs).") var student: String
    @Option(name: .shortAndLong, help: "Where to write the trained student (default: rewrite STUDENT in place).") var outputFile: String?
    @Option(help: "An .npz file of training inputs (and labels).") var data: String
    @Option(help: "kl, mse or cosine.") var outputLoss: String = "kl"
    @Option(help: "The softmax temperature T of the kl loss.") var temperature: Double = 2
    @Option(help: "With --labels: the weight of the distillation loss (1 − alpha goes to cross-entropy).") var alpha: Double = 0.5
    @Option(help: "The array of DATA holding integer class labels (default: none; the teacher alone supervises).") var labels: String?
    @Option(parsing: .upToNextOption, help: "Values to compare, as STUDENT=TEACHER names (default: the float outputs both have).")
    var values: [String] = []
    @Option(parsing: .upToNextOption,
            help: "Intermediate values to match, as STUDENT=TEACHER[:mse|cosine|attention][@WEIGHT] (hidden states of other widths through a learned projection; attention: Softmax outputs by KL).")
    var match: [String] = []
    @Option(help: "Threads of the teacher's runs (0 = one per core).") var teacherThreads: Int = 0
    @OptionGroup var training: TrainingArguments

    func run() throws {
        try checkPlotPath(training.plot)
        guard let loss = DistillationOptions.OutputLoss(rawValue: outputLoss) else {
            throw KerfError.invalidArgument("--output-loss must be kl, mse or cosine, got '\(outputLoss)'")
        }
        let pairs = try values.map { entry -> (student: String, teacher: String) in
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw KerfError.invalidArgument("--values takes STUDENT=TEACHER value names, got '\(entry)'")
            }
            return (parts[0], parts[1])
        }
        let matches = try match.map(Self.parseMatch)
        let studentModel = try Model.load(path: student), teacherModel = try Model.load(path: teacher)
        let inputs = studentModel.graph.runtimeInputs
        let trainArrays = try training.arrays(data, inputs: inputs, labels: labels)
        guard let samples = trainArrays.values.first?.shape.first, samples > 0 else { throw KerfError.invalidArgument("'\(data)' has no samples") }
        let qat = try training.quantizationAware(studentModel, data: trainArrays)
        let distiller = try Distiller(student: qat?.model ?? studentModel, teacher: teacherModel,
                                      options: DistillationOptions(outputs: pairs, outputLoss: loss, temperature: temperature, alpha: alpha,
                                                                   labels: labels, teacherThreads: teacherThreads, matches: matches),
                                      parameters: ParameterSelection(frozen: training.frozen),
                                      trainerOptions: try training.trainerOptions(samples: samples))
        let validation = try training.validation.map { TrainingData.arrays(try training.arrays($0, inputs: inputs, labels: labels)) }
        let result = try distiller.train(data: .arrays(trainArrays), validation: validation, options: training.loopOptions("distill"),
                                         resumeFrom: training.resume)
        let destination = outputFile ?? student
        try training.finish(result, trained: distiller.trainedStudent(), qat: qat, wrote: destination)
    }

    /// STUDENT=TEACHER[:KIND][@WEIGHT].
    static func parseMatch(_ entry: String) throws -> IntermediateMatch {
        let bad = KerfError.invalidArgument("--match takes STUDENT=TEACHER[:mse|cosine|attention][@WEIGHT], got '\(entry)'")
        var rest = Substring(entry), weight = 1.0
        if let at = rest.lastIndex(of: "@") {
            guard let w = Double(rest[rest.index(after: at)...]), w.isFinite, w >= 0 else { throw bad }
            weight = w
            rest = rest[..<at]
        }
        var kind = IntermediateMatch.Kind.meanSquaredError
        if let colon = rest.lastIndex(of: ":"), let k = IntermediateMatch.Kind(rawValue: String(rest[rest.index(after: colon)...])) {
            kind = k
            rest = rest[..<colon]
        }
        let parts = rest.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw bad }
        return IntermediateMatch(student: parts[0], teacher: parts[1], kind: kind, weight: weight)
    }
}
