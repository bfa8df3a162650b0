import KerfCompress
import KerfCore
import KerfRuntime
#if canImport(Glibc)
import Glibc
#endif

/// `kerf_calibration_fn` (include/kerf.h): fills `inputs` and returns 1, 0 at the end, < 0 on error.
typealias CCalibration = @convention(c) (UnsafeMutableRawPointer?, Int64, UnsafePointer<UnsafePointer<CChar>?>?, Int,
                                         UnsafeMutablePointer<OpaquePointer?>?) -> Int32

/// Layout of `kerf_quantize_options` (include/kerf.h).
struct kerf_quantize_options {
    var struct_size: Int
    var mode: Int32
    var method: Int32
    var percentile: Double
    var activation_type: Int32
    var per_channel: Int32
    var quantize_embeddings: Int32
    var threads: Int32
    var op_types: UnsafePointer<UnsafePointer<CChar>?>?
    var n_op_types: Int
    var exclude: UnsafePointer<UnsafePointer<CChar>?>?
    var n_exclude: Int
    var auto_tolerance: Double
    var smooth_quant_alpha: Double
    var calibration: CCalibration?
    var calibration_user_data: UnsafeMutableRawPointer?
    var calibration_batches: Int64
    var progress: CProgress?
    var progress_user_data: UnsafeMutableRawPointer?
    var validation: CCalibration?  // ABI 1.4
    var validation_user_data: UnsafeMutableRawPointer?
    var validation_batches: Int64
}

/// struct_size of the ABI 1.3 struct (up to progress_user_data): such callers get no validation data.
private let quantizeOptionsSizeV13 = MemoryLayout<kerf_quantize_options>.offset(of: \.validation)!

@_cdecl("kerf_quantize_options_init")
public func kerf_quantize_options_init(_ options: UnsafeMutableRawPointer?) {
    guard let options else { return }
    let d = QuantizeOptions()
    options.storeBytes(of: kerf_quantize_options(struct_size: MemoryLayout<kerf_quantize_options>.size, mode: 0, method: 0,
                                                 percentile: 99.99, activation_type: 0, per_channel: d.perChannel ? 1 : 0,
                                                 quantize_embeddings: 0, threads: 0, op_types: nil, n_op_types: 0,
                                                 exclude: nil, n_exclude: 0, auto_tolerance: -1, smooth_quant_alpha: -1,
                                                 calibration: nil, calibration_user_data: nil, calibration_batches: 0, progress: nil, progress_user_data: nil,
                                                 validation: nil, validation_user_data: nil, validation_batches: 0),
                       as: kerf_quantize_options.self)
}

/// `QuantizeOptions` from a C options struct (NULL = defaults), with its callbacks.
private func quantizeOptions(_ raw: UnsafeRawPointer?) throws -> (QuantizeOptions, kerf_quantize_options?) {
    var o = QuantizeOptions()
    guard let raw else { return (o, nil) }
    let size = raw.load(as: Int.self)
    try argument(size >= quantizeOptionsSizeV13, "options->struct_size is \(size); call kerf_quantize_options_init first")
    var c = kerf_quantize_options(struct_size: size, mode: 0, method: 0, percentile: 0, activation_type: 0, per_channel: 0,
                                  quantize_embeddings: 0, threads: 0, op_types: nil, n_op_types: 0, exclude: nil, n_exclude: 0,
                                  auto_tolerance: 0, smooth_quant_alpha: 0, calibration: nil, calibration_user_data: nil,
                                  calibration_batches: 0, progress: nil, progress_user_data: nil,
                                  validation: nil, validation_user_data: nil, validation_batches: 0)
    // An ABI 1.3 caller's struct ends before the validation fields, which keep their defaults.
    withUnsafeMutableBytes(of: &c) { $0.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: min(size, MemoryLayout<kerf_quantize_options>.size))) }
    switch c.mode {
    case 0: o.mode = .dynamic
    case 1: o.mode = .static
    default: throw KerfError.invalidArgument("options->mode \(c.mode) is not a KERF_QUANTIZE_* mode")
    }
    switch c.method {
    case 0: o.method = .minMax
    case 1: o.method = .percentile(c.percentile)
    case 2: o.method = .entropy
    default: throw KerfError.invalidArgument("options->method \(c.method) is not a KERF_CALIBRATE_* method")
    }
    switch c.activation_type {
    case 0: o.activationType = .uint8
    case 1: o.activationType = .int8
    default: throw KerfError.invalidArgument("options->activation_type \(c.activation_type) is not a KERF_ACTIVATION_* type")
    }
    o.perChannel = c.per_channel != 0
    o.quantizeEmbeddings = c.quantize_embeddings != 0
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
private func calibrationSource(_ fn: CCalibration, _ user: UnsafeMutableRawPointer?, count: Int64, graph: Graph) -> CalibrationSource {
    let names = graph.runtimeInputs.map(\.name)
    return ClosureCalibration(count: count > 0 ? Int(clamping: count) : nil) { index in
        let cNames = names.map { strdup($0) }
        defer { cNames.forEach { free($0) } }
        var handles = [OpaquePointer?](repeating: nil, count: names.count)
        let status = cNames.map { UnsafePointer($0) }.withUnsafeBufferPointer { namePointers in
            handles.withUnsafeMutableBufferPointer { fn(user, Int64(index), namePointers.baseAddress, names.count, $0.baseAddress) }
        }
        // Kerf owns whatever the callback stored, even when it then reports an error.
        defer { for h in handles { HandleRegistry.shared.release(h, as: TensorHandle.self) } }
        if status < 0 { throw KerfError.invalidArgument("the calibration callback failed at batch \(index) (returned \(status))") }
        if status == 0 { return nil }
        var feeds: [String: Tensor] = [:]
        for (k, name) in names.enumerated() {
            feeds[name] = try HandleRegistry.shared.resolve(handles[k], as: TensorHandle.self, "calibration input '\(name)' of batch \(index)").tensor
        }
        return feeds
    }
}

@_cdecl("kerf_quantize")
public func kerf_quantize(_ model: OpaquePointer?, _ options: UnsafeRawPointer?,
                          _ report: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    report?.pointee = nil
    return guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        let (o, c) = try quantizeOptions(options)
        let source = c?.calibration.map { calibrationSource($0, c?.calibration_user_data, count: c?.calibration_batches ?? 0, graph: m.model.graph) }
        let validation = c?.validation.map { calibrationSource($0, c?.validation_user_data, count: c?.validation_batches ?? 0, graph: m.model.graph) }
        let result = try quantize(m.model, options: o, calibration: source, validation: validation,
                                  progress: progressHandler(c?.progress, c?.progress_user_data))
        try storeString(try result.json(), report)
    }
}
