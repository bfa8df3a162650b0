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
                             student_values: nil, teacher_values: nil, n_values: 0, teacher_threads: 0, match_students: nil,
                             match_teachers: nil, match_kinds: nil, match_weights: nil, n_matches: 0)
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
    try argument(c.n_matches < 1 << 16, "distill->n_matches \(c.n_matches) is out of range")
    let matchStudents = try strings(c.match_students, c.n_matches, "distill->match_students")
    let matchTeachers = try strings(c.match_teachers, c.n_matches, "distill->match_teachers")
    let matches = try (0..<c.n_matches).map { i -> IntermediateMatch in
        let kind: IntermediateMatch.Kind
        switch Int(c.match_kinds?[i] ?? Int32(KERF_MATCH_MSE)) {
        case KERF_MATCH_MSE: kind = .meanSquaredError
        case KERF_MATCH_COSINE: kind = .cosine
        case KERF_MATCH_ATTENTION: kind = .attention
        default: throw KerfError.invalidArgument("distill->match_kinds[\(i)] \(c.match_kinds![i]) is not a KERF_MATCH_* value")
        }
        return IntermediateMatch(student: matchStudents[i], teacher: matchTeachers[i], kind: kind, weight: c.match_weights?[i] ?? 1)
    }
    return DistillationOptions(outputs: Array(zip(students, teachers)).map { (student: $0.0, teacher: $0.1) }, outputLoss: outputLoss,
                               temperature: c.temperature, alpha: c.alpha, labels: try c.labels.map { try string($0, "distill->labels") },
                               teacherThreads: Int(c.teacher_threads), matches: matches)
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
        try storeString(try writeBack(distiller.trainedStudent(), into: s.model, qat: qat, report: try result.json()), report)
    }
}
