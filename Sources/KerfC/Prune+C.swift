import FoundationEssentials
import KerfCompress
import KerfCore
import KerfRuntime
#if canImport(Glibc)
import Glibc
#endif

/// Layout of `kerf_prune_options` (include/kerf.h).
struct kerf_prune_options {
    var struct_size: Int
    var method: Int32
    var scope: Int32
    var sparsity: Double
    var max_tensor_sparsity: Double
    var n: Int32
    var m: Int32
    var channel_criterion: Int32
    var store_sparse: Int32
    var min_elements: Int64
    var exclude: UnsafePointer<UnsafePointer<CChar>?>?
    var n_exclude: Int
    var per_tensor_names: UnsafePointer<UnsafePointer<CChar>?>?
    var per_tensor_sparsity: UnsafePointer<Double>?
    var n_per_tensor: Int
}

@_cdecl("kerf_prune_options_init")
public func kerf_prune_options_init(_ options: UnsafeMutableRawPointer?) {
    guard let options else { return }
    let d = PruneOptions()
    options.storeBytes(of: kerf_prune_options(struct_size: MemoryLayout<kerf_prune_options>.size, method: 0, scope: 0,
                                              sparsity: d.sparsity, max_tensor_sparsity: d.maxTensorSparsity, n: 2, m: 4,
                                              channel_criterion: 0, store_sparse: 0, min_elements: 0, exclude: nil, n_exclude: 0,
                                              per_tensor_names: nil, per_tensor_sparsity: nil, n_per_tensor: 0),
                       as: kerf_prune_options.self)
}

/// `PruneOptions` from a C options struct (NULL = defaults).
private func pruneOptions(_ raw: UnsafeRawPointer?) throws -> PruneOptions {
    var o = PruneOptions()
    guard let raw else { return o }
    let c = try loadOptions(raw, as: kerf_prune_options.self, "kerf_prune_options_init")
    switch c.method {
    case 0: o.method = .magnitude
    case 1: o.method = .nOfM(n: Int(c.n), m: Int(c.m))
    case 2: o.method = .channel
    default: throw KerfError.invalidArgument("options->method \(c.method) is not a KERF_PRUNE_* method")
    }
    switch c.scope {
    case 0: o.scope = .layer
    case 1: o.scope = .global
    default: throw KerfError.invalidArgument("options->scope \(c.scope) is not a KERF_PRUNE_SCOPE_* value")
    }
    switch c.channel_criterion {
    case 0: o.channelCriterion = .l1
    case 1: o.channelCriterion = .l2
    case 2: o.channelCriterion = .batchNormGamma
    default: throw KerfError.invalidArgument("options->channel_criterion \(c.channel_criterion) is not a KERF_CHANNEL_* value")
    }
    o.sparsity = c.sparsity
    o.maxTensorSparsity = c.max_tensor_sparsity
    o.storeSparse = c.store_sparse != 0
    o.minElements = Int(clamping: c.min_elements)
    o.exclude = NameFilter(try strings(c.exclude, c.n_exclude, "options->exclude"))
    let names = try strings(c.per_tensor_names, c.n_per_tensor, "options->per_tensor_names")
    try argument(names.isEmpty || c.per_tensor_sparsity != nil, "options->per_tensor_sparsity is NULL")
    for (i, name) in names.enumerated() { o.perTensor[name] = c.per_tensor_sparsity![i] }
    return o
}

@_cdecl("kerf_prune")
public func kerf_prune(_ model: OpaquePointer?, _ options: UnsafeRawPointer?,
                       _ report: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    report?.pointee = nil
    return guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        let result = try prune(m.model, options: try pruneOptions(options))
        try storeString(try result.json(), report)
    }
}

/// Layout of `kerf_sensitivity_options` (include/kerf.h).
struct kerf_sensitivity_options {
    var struct_size: Int
    var levels: UnsafePointer<Double>?
    var n_levels: Int
    var exclude: UnsafePointer<UnsafePointer<CChar>?>?
    var n_exclude: Int
    var min_elements: Int64
    var batch_size: Int64
    var threads: Int32
    var progress: CProgress?
    var progress_user_data: UnsafeMutableRawPointer?
}

@_cdecl("kerf_sensitivity_options_init")
public func kerf_sensitivity_options_init(_ options: UnsafeMutableRawPointer?) {
    guard let options else { return }
    options.storeBytes(of: kerf_sensitivity_options(struct_size: MemoryLayout<kerf_sensitivity_options>.size, levels: nil, n_levels: 0,
                                                    exclude: nil, n_exclude: 0, min_elements: 0,
                                                    batch_size: Int64(SensitivityOptions().batchSize), threads: 0,
                                                    progress: nil, progress_user_data: nil),
                       as: kerf_sensitivity_options.self)
}

/// `SensitivityOptions` and the progress callback from a C options struct (NULL = defaults).
private func sensitivityOptions(_ raw: UnsafeRawPointer?) throws -> (SensitivityOptions, ProgressHandler?) {
    var o = SensitivityOptions()
    guard let raw else { return (o, nil) }
    let c = try loadOptions(raw, as: kerf_sensitivity_options.self, "kerf_sensitivity_options_init")
    try argument(c.n_levels >= 0 && c.n_levels < 1 << 16, "options->n_levels \(c.n_levels) is out of range")
    if c.n_levels > 0 {
        try argument(c.levels != nil, "options->levels is NULL")
        o.levels = (0..<c.n_levels).map { c.levels![$0] }
    }
    o.exclude = NameFilter(try strings(c.exclude, c.n_exclude, "options->exclude"))
    o.minElements = Int(clamping: c.min_elements)
    o.batchSize = Int(clamping: c.batch_size)
    try argument(c.threads >= 0 && c.threads <= 1024, "options->threads must be between 0 and 1024, got \(c.threads)")
    o.session.threads = Int(c.threads)
    return (o, progressHandler(c.progress, c.progress_user_data))
}

@_cdecl("kerf_sensitivity")
public func kerf_sensitivity(_ model: OpaquePointer?, _ inputNames: UnsafePointer<UnsafePointer<CChar>?>?,
                             _ data: UnsafePointer<OpaquePointer?>?, _ dataCount: Int, _ labels: OpaquePointer?,
                             _ options: UnsafeRawPointer?, _ table: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    table?.pointee = nil
    return guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        let names = try strings(inputNames, dataCount, "input_names")
        try argument(dataCount == 0 || data != nil, "data is NULL")
        var feeds: [String: Tensor] = [:]
        for (i, name) in names.enumerated() {
            try argument(feeds[name] == nil, "input '\(name)' is given twice")
            feeds[name] = try HandleRegistry.shared.resolve(data![i], as: TensorHandle.self, "data[\(i)]").tensor
        }
        let labelTensor = try labels.map { try HandleRegistry.shared.resolve($0, as: TensorHandle.self, "labels").tensor }
        let (o, progress) = try sensitivityOptions(options)
        let result = try sensitivity(m.model, data: feeds, labels: labelTensor, options: o, progress: progress)
        try storeString(try result.json(), table)
    }
}
