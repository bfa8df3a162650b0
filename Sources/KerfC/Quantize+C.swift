import KerfCompress
import KerfCore
import KerfCShims
import KerfRuntime
#if canImport(Glibc)
import Glibc
#endif

extension kerf_quantize_options: OptionsStruct {
    static let cName = "kerf_quantize_options"
    /// ABI 1.3: up to progress_user_data.
    static let firstSize = size(through: \.progress_user_data)
    /// ABI 1.4 to 1.7: up to validation_batches.
    static let unsizedInitSize = size(through: \.validation_batches)
    static var defaults: kerf_quantize_options {
        var o = kerf_quantize_options()
        o.struct_size = currentSize
        o.mode = Int32(KERF_QUANTIZE_DYNAMIC)
        o.method = Int32(KERF_CALIBRATE_MINMAX)
        o.percentile = 99.99
        o.activation_type = Int32(KERF_ACTIVATION_UINT8)
        o.per_channel = QuantizeOptions().perChannel ? 1 : 0
        o.quantize_embeddings = -1
        o.auto_tolerance = -1
        o.smooth_quant_alpha = -1
        return o
    }
}

@c @implementation
public func kerf_quantize_options_init_sized(_ options: UnsafeMutablePointer<kerf_quantize_options>?, _ size: Int) -> kerf_status {
    fillOptions(options, size: size)
}

@c @implementation
public func kerf_quantize_options_init(_ options: UnsafeMutablePointer<kerf_quantize_options>?) { fillLegacyOptions(options) }

/// `QuantizeOptions` from a C options struct (NULL = defaults), with the struct (for its callbacks).
func quantizeOptions(_ pointer: UnsafePointer<kerf_quantize_options>?) throws -> (QuantizeOptions, kerf_quantize_options) {
    let c = try readOptions(pointer)
    var o = QuantizeOptions()
    switch Int(c.mode) {
    case KERF_QUANTIZE_DYNAMIC: o.mode = .dynamic
    case KERF_QUANTIZE_STATIC: o.mode = .static
    default: throw KerfError.invalidArgument("options->mode \(c.mode) is not a KERF_QUANTIZE_* mode")
    }
    switch Int(c.method) {
    case KERF_CALIBRATE_MINMAX: o.method = .minMax
    case KERF_CALIBRATE_PERCENTILE: o.method = .percentile(c.percentile)
    case KERF_CALIBRATE_ENTROPY: o.method = .entropy
    default: throw KerfError.invalidArgument("options->method \(c.method) is not a KERF_CALIBRATE_* method")
    }
    switch Int(c.activation_type) {
    case KERF_ACTIVATION_UINT8: o.activationType = .uint8
    case KERF_ACTIVATION_INT8: o.activationType = .int8
    default: throw KerfError.invalidArgument("options->activation_type \(c.activation_type) is not a KERF_ACTIVATION_* type")
    }
    o.perChannel = c.per_channel != 0
    o.quantizeEmbeddings = c.quantize_embeddings < 0 ? nil : c.quantize_embeddings != 0
    try argument(c.threads >= 0 && c.threads <= 1024, "options->threads must be between 0 and 1024, got \(c.threads)")
    o.session.threads = Int(c.threads)
    let ops = try strings(c.op_types, c.n_op_types, "options->op_types")
    if !ops.isEmpty { o.opTypes = Set(ops) }
    o.exclude = NameFilter(try strings(c.exclude, c.n_exclude, "options->exclude"))
    o.autoTolerance = c.auto_tolerance < 0 ? nil : c.auto_tolerance
    o.smoothQuantAlpha = c.smooth_quant_alpha < 0 ? nil : c.smooth_quant_alpha
    return (o, c)
}

/// Batches from a C calibration callback: one call per batch, tensors owned by Kerf after it.
func calibrationSource(_ fn: kerf_calibration_fn, _ user: UnsafeMutableRawPointer?, count: Int64, graph: Graph) -> CalibrationSource {
    let names = graph.runtimeInputs.map(\.name)
    return ClosureCalibration(count: count > 0 ? Int(clamping: count) : nil) { index in
        try feedsFromCallback(names: names, callback: "calibration", "batch \(index)") { fn(user, Int64(index), $0, names.count, $1) }
    }
}

@c @implementation
public func kerf_quantize(_ model: OpaquePointer?, _ options: UnsafePointer<kerf_quantize_options>?,
                          _ report: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> kerf_status {
    report?.pointee = nil
    return guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        let (o, c) = try quantizeOptions(options)
        let source = c.calibration.map { calibrationSource($0, c.calibration_user_data, count: c.calibration_batches, graph: m.model.graph) }
        let validation = c.validation.map { calibrationSource($0, c.validation_user_data, count: c.validation_batches, graph: m.model.graph) }
        let result = try quantize(m.model, options: o, calibration: source, validation: validation,
                                  progress: progressHandler(c.progress, c.progress_user_data))
        try storeString(try result.json(), report)
    }
}
