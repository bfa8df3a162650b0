import FoundationEssentials
import KerfCompress
import KerfCore
import KerfCShims
import KerfRuntime
#if canImport(Glibc)
import Glibc
#endif

extension kerf_prune_options: OptionsStruct {
    static let cName = "kerf_prune_options"
    /// ABI 1.2 to 1.7: up to n_per_tensor.
    static let firstSize = size(through: \.n_per_tensor)
    static let unsizedInitSize = size(through: \.n_per_tensor)
    static var defaults: kerf_prune_options {
        let d = PruneOptions()
        var o = kerf_prune_options()
        o.struct_size = currentSize
        o.method = Int32(KERF_PRUNE_MAGNITUDE)
        o.scope = Int32(KERF_PRUNE_SCOPE_LAYER)
        o.sparsity = d.sparsity
        o.max_tensor_sparsity = d.maxTensorSparsity
        o.n = 2
        o.m = 4
        o.channel_criterion = Int32(KERF_CHANNEL_L1)
        o.channel_multiple = Int32(d.channelMultiple)
        return o
    }
}

@c @implementation
public func kerf_prune_options_init_sized(_ options: UnsafeMutablePointer<kerf_prune_options>?, _ size: Int) -> kerf_status {
    fillOptions(options, size: size)
}

@c @implementation
public func kerf_prune_options_init(_ options: UnsafeMutablePointer<kerf_prune_options>?) { fillLegacyOptions(options) }

/// `PruneOptions` and the progress callback from a C options struct (NULL = defaults).
private func pruneOptions(_ pointer: UnsafePointer<kerf_prune_options>?) throws -> (PruneOptions, ProgressHandler?) {
    let c = try readOptions(pointer)
    var o = PruneOptions()
    switch Int(c.method) {
    case KERF_PRUNE_MAGNITUDE: o.method = .magnitude
    case KERF_PRUNE_N_OF_M: o.method = .nOfM(n: Int(c.n), m: Int(c.m))
    case KERF_PRUNE_CHANNEL: o.method = .channel
    default: throw KerfError.invalidArgument("options->method \(c.method) is not a KERF_PRUNE_* method")
    }
    switch Int(c.scope) {
    case KERF_PRUNE_SCOPE_LAYER: o.scope = .layer
    case KERF_PRUNE_SCOPE_GLOBAL: o.scope = .global
    default: throw KerfError.invalidArgument("options->scope \(c.scope) is not a KERF_PRUNE_SCOPE_* value")
    }
    switch Int(c.channel_criterion) {
    case KERF_CHANNEL_L1: o.channelCriterion = .l1
    case KERF_CHANNEL_L2: o.channelCriterion = .l2
    case KERF_CHANNEL_BN_GAMMA: o.channelCriterion = .batchNormGamma
    default: throw KerfError.invalidArgument("options->channel_criterion \(c.channel_criterion) is not a KERF_CHANNEL_* value")
    }
    o.sparsity = c.sparsity
    o.maxTensorSparsity = c.max_tensor_sparsity
    o.storeSparse = c.store_sparse != 0
    o.minElements = Int(clamping: c.min_elements)
    o.channelMultiple = Int(c.channel_multiple)
    o.exclude = NameFilter(try strings(c.exclude, c.n_exclude, "options->exclude"))
    let names = try strings(c.per_tensor_names, c.n_per_tensor, "options->per_tensor_names")
    try argument(names.isEmpty || c.per_tensor_sparsity != nil, "options->per_tensor_sparsity is NULL")
    for (i, name) in names.enumerated() { o.perTensor[name] = c.per_tensor_sparsity![i] }
    return (o, progressHandler(c.progress, c.progress_user_data))
}

@c @implementation
public func kerf_prune(_ model: OpaquePointer?, _ options: UnsafePointer<kerf_prune_options>?,
                       _ report: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> kerf_status {
    report?.pointee = nil
    return guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        let (o, progress) = try pruneOptions(options)
        let result = try prune(m.model, options: o, progress: progress)
        try storeString(try result.json(), report)
    }
}

extension kerf_sensitivity_options: OptionsStruct {
    static let cName = "kerf_sensitivity_options"
    /// ABI 1.2 to 1.7: up to progress_user_data.
    static let firstSize = size(through: \.progress_user_data)
    static let unsizedInitSize = size(through: \.progress_user_data)
    static var defaults: kerf_sensitivity_options {
        var o = kerf_sensitivity_options()
        o.struct_size = currentSize
        o.batch_size = Int64(SensitivityOptions().batchSize)
        return o
    }
}

@c @implementation
public func kerf_sensitivity_options_init_sized(_ options: UnsafeMutablePointer<kerf_sensitivity_options>?, _ size: Int) -> kerf_status {
    fillOptions(options, size: size)
}

@c @implementation
public func kerf_sensitivity_options_init(_ options: UnsafeMutablePointer<kerf_sensitivity_options>?) { fillLegacyOptions(options) }

/// `SensitivityOptions` and the progress callback from a C options struct (NULL = defaults).
private func sensitivityOptions(_ pointer: UnsafePointer<kerf_sensitivity_options>?) throws -> (SensitivityOptions, ProgressHandler?) {
    let c = try readOptions(pointer)
    var o = SensitivityOptions()
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

@c @implementation
public func kerf_sensitivity(_ model: OpaquePointer?, _ inputNames: UnsafePointer<UnsafePointer<CChar>?>?,
                             _ data: UnsafePointer<OpaquePointer?>?, _ dataCount: Int, _ labels: OpaquePointer?,
                             _ options: UnsafePointer<kerf_sensitivity_options>?,
                             _ table: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> kerf_status {
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
