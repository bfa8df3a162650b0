import KerfCompress
import KerfCore
import KerfCShims
import KerfTrain

/// Quantization-aware training for kerf_train and kerf_distill (`options->qat`): the model is
/// prepared with fake quantization before the trainer is made, and the trained model is written
/// back as the int8 file kerf_quantize writes.
struct QuantizationAwareRun {
    let prepared: QuantizationAwareModel
    private let comparison: CalibrationSource?
    private let progress: ProgressHandler?

    /// The run `c.qat` asks for on `model` trained on `data`, or nil when `c.qat` is NULL.
    init?(_ c: kerf_train_options, model: Model, data: TrainingData) throws {
        guard let pointer = c.qat else { return nil }
        try argument(c.qat_range_momentum >= 0 && c.qat_range_momentum <= 1,
                     "options->qat_range_momentum \(c.qat_range_momentum) is not in [0, 1]")
        let (options, q) = try quantizeOptions(pointer)
        let graph = model.graph
        var calibration = q.calibration.map { calibrationSource($0, q.calibration_user_data, count: q.calibration_batches, graph: graph) }
        if calibration == nil, options.mode == .static {
            guard case .arrays(let arrays) = data else {
                throw KerfError.invalidArgument("options->qat->calibration is NULL and the data come from a callback: "
                                                + "static quantization-aware training needs calibration data for its initial ranges")
            }
            let inputs = Set(graph.runtimeInputs.map(\.name))
            calibration = try ArrayCalibration(arrays.filter { inputs.contains($0.key) }, graph: graph, batchSize: Int(clamping: c.batch_size))
        }
        progress = progressHandler(q.progress, q.progress_user_data)
        prepared = try QuantizationAwareModel(model, options: options, calibration: calibration, progress: progress)
        comparison = q.validation.map { calibrationSource($0, q.validation_user_data, count: q.validation_batches, graph: graph) }
            ?? q.calibration.map { calibrationSource($0, q.calibration_user_data, count: q.calibration_batches, graph: graph) }
    }

    /// Quantizes `trained` (the prepared model, trained) and makes `model` that int8 model;
    /// returns the training report `json` with "quantization": the quantize report.
    func finish(_ trained: Model, into model: Model, report json: String) throws -> String {
        let report = try prepared.quantize(trained, validation: comparison, progress: progress)
        model.graph.nodes = trained.graph.nodes
        model.graph.initializers = trained.graph.initializers
        model.graph.valueInfo = trained.graph.valueInfo
        model.opsetImports = trained.opsetImports
        return try jsonObject(json, adding: "quantization", try report.json())
    }
}

/// Makes `model` the trained model: its trained initializers, or with `qat` the int8 model it
/// quantizes to. Returns the training report `json` (with "quantization" after QAT).
func writeBack(_ trained: Model, into model: Model, qat: QuantizationAwareRun?, report json: String) throws -> String {
    guard let qat else {
        model.graph.initializers = trained.graph.initializers
        return json
    }
    return try qat.finish(trained, into: model, report: json)
}
