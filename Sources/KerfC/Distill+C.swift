import KerfCore
import KerfCShims
import KerfTrain

extension kerf_distill_options: OptionsStruct {
    static let cName = "kerf_distill_options"
    /// ABI 1.10: up to teacher_threads.
    static let firstSize = size(through: \.teacher_threads)
    static let unsizedInitSize = size(through: \.teacher_threads)
    static var defaults: kerf_distill_options {
        kerf_distill_options(struct_size: currentSize, output_loss: Int32(KERF_DISTILL_KL), temperature: 2, alpha: 0.5, labels: nil,
                             student_values: nil, teacher_values: nil, n_values: 0, teacher_threads: 0)
    }
}

@c @implementation
public func kerf_distill_options_init_sized(_ options: UnsafeMutablePointer<kerf_distill_options>?, _ size: Int) -> kerf_status {
    fillOptions(options, size: size)
}

/// `DistillationOptions` from a C options struct (NULL = defaults).
private func distillationOptions(_ pointer: UnsafePointer<kerf_distill_options>?) throws -> DistillationOptions {
    let c = try readOptions(pointer, "distill")
    let outputLoss: DistillationOptions.OutputLoss
    switch Int(c.output_loss) {
    case KERF_DISTILL_KL: outputLoss = .klDivergence
    case KERF_DISTILL_MSE: outputLoss = .meanSquaredError
    case KERF_DISTILL_COSINE: outputLoss = .cosine
    default: throw KerfError.invalidArgument("distill->output_loss \(c.output_loss) is not a KERF_DISTILL_* value")
    }
    try argument(c.n_values < 1 << 16, "distill->n_values \(c.n_values) is out of range")
    let students = try strings(c.student_values, c.n_values, "distill->student_values")
    let teachers = try strings(c.teacher_values, c.n_values, "distill->teacher_values")
    try argument(c.teacher_threads >= 0 && c.teacher_threads <= 1024, "distill->teacher_threads must be between 0 and 1024, got \(c.teacher_threads)")
    return DistillationOptions(outputs: Array(zip(students, teachers)).map { (student: $0.0, teacher: $0.1) }, outputLoss: outputLoss,
                               temperature: c.temperature, alpha: c.alpha, labels: try c.labels.map { try string($0, "distill->labels") },
                               teacherThreads: Int(c.teacher_threads))
}

@c @implementation
public func kerf_distill(_ student: OpaquePointer?, _ teacher: OpaquePointer?, _ options: UnsafePointer<kerf_train_options>?,
                         _ distill: UnsafePointer<kerf_distill_options>?,
                         _ report: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> kerf_status {
    report?.pointee = nil
    return guarded {
        let s = try HandleRegistry.shared.resolve(student, as: ModelHandle.self, "student")
        let t = try HandleRegistry.shared.resolve(teacher, as: ModelHandle.self, "teacher")
        try argument(options != nil, "options is NULL: distillation needs data")
        let c = try readOptions(options)
        try argument(c.n_loss == 0, "options->loss must be empty: kerf_distill builds the loss from distill")
        let (selection, trainerOptions) = try trainerSettings(c)
        let distillation = try distillationOptions(distill)
        let feeds = s.model.graph.runtimeInputs.map(\.name) + (distillation.labels.map { [$0] } ?? [])
        let parts = try loopParts(c, feedNames: feeds)
        let qat = try QuantizationAwareRun(c, model: s.model, data: parts.data)
        let distiller = try Distiller(student: qat?.prepared.model ?? s.model, teacher: t.model, options: distillation,
                                      parameters: selection, trainerOptions: trainerOptions)
        let result = try distiller.train(data: parts.data, validation: parts.validation, options: parts.loop, resumeFrom: parts.resume)
        var text = try result.json()
        if let qat {
            text = try qat.finish(distiller.trainer.trainedModel(), into: s.model, report: text)
        } else {
            s.model.graph.initializers = distiller.trainer.trainedModel().graph.initializers
        }
        try storeString(text, report)
    }
}
