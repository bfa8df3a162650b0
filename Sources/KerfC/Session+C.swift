import KerfCore
import KerfCShims
import KerfRuntime

/// The object behind a `kerf_session *`. It keeps the model's C value infos alive (callers
/// may use those names while a session made from the model lives), not the model itself: the
/// session holds what it runs with, and weights it prepared a copy of are freed with the model.
final class SessionHandle {
    let session: Session
    private let valueInfos: ([CValueInfo], [CValueInfo])
    init(_ session: Session, _ model: ModelHandle) {
        self.session = session
        valueInfos = (model.inputs, model.outputs)
    }
}

extension kerf_session_options: OptionsStruct {
    static let cName = "kerf_session_options"
    /// ABI 1.0 and 1.1: up to optimization_level.
    static let firstSize = size(through: \.optimization_level)
    /// ABI 1.7: up to memory_limit.
    static let unsizedInitSize = size(through: \.memory_limit)
    static var defaults: kerf_session_options {
        kerf_session_options(struct_size: currentSize, threads: 0, optimization_level: 1, sparse_kernels: 1, memory_limit: 0,
                             kept_values: nil, n_kept_values: 0)
    }
}

@c @implementation
public func kerf_session_options_init_sized(_ options: UnsafeMutablePointer<kerf_session_options>?, _ size: Int) -> kerf_status {
    fillOptions(options, size: size)
}

@c @implementation
public func kerf_session_options_init(_ options: UnsafeMutablePointer<kerf_session_options>?) { fillLegacyOptions(options) }

/// `SessionOptions` from a C options struct (NULL = defaults).
private func sessionOptions(_ pointer: UnsafePointer<kerf_session_options>?) throws -> SessionOptions {
    let c = try readOptions(pointer)
    try argument(c.threads >= 0 && c.threads <= 1024, "threads must be between 0 and 1024, got \(c.threads)")
    try argument(c.optimization_level == 0 || c.optimization_level == 1, "optimization_level must be 0 or 1")
    try argument(c.sparse_kernels == 0 || c.sparse_kernels == 1, "sparse_kernels must be 0 or 1")
    try argument(c.n_kept_values < 1 << 24, "n_kept_values \(c.n_kept_values) is out of range")
    let kept = try strings(c.kept_values, Int(c.n_kept_values), "kept_values")
    return SessionOptions(threads: Int(c.threads), optimizationLevel: Int(c.optimization_level), sparseKernels: c.sparse_kernels == 1,
                          memoryLimit: c.memory_limit > UInt64(Int.max) ? Int.max : Int(c.memory_limit), keptValues: kept)
}

@c @implementation
public func kerf_session_create(_ model: OpaquePointer?, _ options: UnsafePointer<kerf_session_options>?,
                                _ out: UnsafeMutablePointer<OpaquePointer?>?) -> kerf_status {
    out?.pointee = nil
    return guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        try argument(out != nil, "out is NULL")
        let opts = try sessionOptions(options)
        out!.pointee = HandleRegistry.shared.register(SessionHandle(try Session(model: m.model, options: opts), m))
    }
}

@c @implementation
public func kerf_session_free(_ session: OpaquePointer?) {
    HandleRegistry.shared.release(session, as: SessionHandle.self)
}

@c @implementation
public func kerf_session_run(_ session: OpaquePointer?,
                             _ inputNames: UnsafePointer<UnsafePointer<CChar>?>?, _ inputs: UnsafePointer<OpaquePointer?>?,
                             _ inputCount: Int,
                             _ outputNames: UnsafePointer<UnsafePointer<CChar>?>?, _ outputs: UnsafeMutablePointer<OpaquePointer?>?,
                             _ outputCount: Int) -> Int32 {
    clearOutputs(outputs, outputCount)
    return guarded {
        let s = try HandleRegistry.shared.resolve(session, as: SessionHandle.self, "session")
        try checkCounts(inputCount, inputNames != nil && inputs != nil, outputCount, outputs)
        let feeds = try feedsByName(inputNames, inputCount) { i in
            try HandleRegistry.shared.resolve(inputs![i], as: TensorHandle.self, "inputs[\(i)]").tensor
        }
        try run(s, feeds, outputNames, outputs!, nil, outputCount)
    }
}

@c @implementation
public func kerf_session_run_views(_ session: OpaquePointer?,
                                   _ inputNames: UnsafePointer<UnsafePointer<CChar>?>?, _ inputs: UnsafePointer<kerf_tensor_view>?,
                                   _ inputCount: Int,
                                   _ outputNames: UnsafePointer<UnsafePointer<CChar>?>?,
                                   _ outputs: UnsafeMutablePointer<OpaquePointer?>?, _ outputViews: UnsafeMutablePointer<kerf_tensor_view>?,
                                   _ outputCount: Int) -> kerf_status {
    runViews(session, inputNames, inputs, inputCount, outputNames, outputs, outputViews, outputCount, copyInto: false)
}

@c @implementation
public func kerf_session_run_into(_ session: OpaquePointer?,
                                  _ inputNames: UnsafePointer<UnsafePointer<CChar>?>?, _ inputs: UnsafePointer<kerf_tensor_view>?,
                                  _ inputCount: Int,
                                  _ outputNames: UnsafePointer<UnsafePointer<CChar>?>?,
                                  _ outputs: UnsafeMutablePointer<OpaquePointer?>?, _ outputViews: UnsafeMutablePointer<kerf_tensor_view>?,
                                  _ outputCount: Int) -> kerf_status {
    runViews(session, inputNames, inputs, inputCount, outputNames, outputs, outputViews, outputCount, copyInto: true)
}

private func runViews(_ session: OpaquePointer?, _ inputNames: UnsafePointer<UnsafePointer<CChar>?>?, _ inputs: UnsafePointer<kerf_tensor_view>?,
                      _ inputCount: Int, _ outputNames: UnsafePointer<UnsafePointer<CChar>?>?,
                      _ outputs: UnsafeMutablePointer<OpaquePointer?>?, _ outputViews: UnsafeMutablePointer<kerf_tensor_view>?,
                      _ outputCount: Int, copyInto: Bool) -> kerf_status {
    clearOutputs(outputs, outputCount)
    return guarded {
        let s = try HandleRegistry.shared.resolve(session, as: SessionHandle.self, "session")
        try checkCounts(inputCount, inputNames != nil && inputs != nil, outputCount, outputs)
        try argument(!copyInto || outputCount == 0 || outputViews != nil, "output_views is NULL")
        let feeds = try feedsByName(inputNames, inputCount) { i in
            let v = inputs![i]
            return try describedTensor(v.dtype, v.dims, v.rank, UnsafeMutableRawPointer(mutating: v.data), v.byte_size)
        }
        try run(s, feeds, outputNames, outputs!, outputViews, outputCount,
                copyInto: copyInto)
    }
}

/// Sets `outputs[0..<count]` to NULL (when the array and count are usable), so that every
/// slot is NULL on failure.
private func clearOutputs(_ outputs: UnsafeMutablePointer<OpaquePointer?>?, _ count: Int) {
    if let outputs, count > 0, count < 1 << 20 { for i in 0..<count { outputs[i] = nil } }
}

private func checkCounts(_ inputCount: Int, _ inputsGiven: Bool, _ outputCount: Int,
                         _ outputs: UnsafeMutablePointer<OpaquePointer?>?) throws {
    try argument(inputCount >= 0 && inputCount < 1 << 20, "n_inputs \(inputCount) is out of range")
    try argument(outputCount >= 0 && outputCount < 1 << 20, "n_outputs \(outputCount) is out of range")
    try argument(inputCount == 0 || inputsGiven, "input_names or inputs is NULL")
    try argument(outputCount == 0 || outputs != nil, "outputs is NULL")
}

/// The feeds of a run: input_names[i] -> tensor(i) (the session rejects a name given twice).
private func feedsByName(_ names: UnsafePointer<UnsafePointer<CChar>?>?, _ count: Int,
                         _ tensor: (Int) throws -> Tensor) throws -> [(name: String, tensor: Tensor)] {
    var feeds: [(name: String, tensor: Tensor)] = []
    feeds.reserveCapacity(count)
    for i in 0..<count {
        feeds.append((try string(names![i], "input_names[\(i)]"), try tensor(i)))
    }
    return feeds
}

/// Runs `s` and stores each output as a new handle in `outputs` (and its description in
/// `views`, when given). With `copyInto`, an output that `views[i]` describes exactly (dtype,
/// rank, dims, byte_size, with a buffer at data) is copied there instead, and outputs[i] stays
/// NULL. On failure no handle is left behind.
private func run(_ s: SessionHandle, _ feeds: [(name: String, tensor: Tensor)], _ outputNames: UnsafePointer<UnsafePointer<CChar>?>?,
                 _ outputs: UnsafeMutablePointer<OpaquePointer?>, _ views: UnsafeMutablePointer<kerf_tensor_view>?,
                 _ outputCount: Int, copyInto: Bool = false) throws {
    var names: [String]? = nil
    if let outputNames {
        names = try (0..<outputCount).map { try string(outputNames[$0], "output_names[\($0)]") }
    } else {
        try argument(outputCount == s.session.outputs.count,
                     "n_outputs is \(outputCount) but the model has \(s.session.outputs.count) outputs (output_names is NULL)")
    }
    let results = try s.session.run(feeding: feeds, outputNames: names)
    for (i, t) in results.enumerated() {
        if copyInto, let view = views?[i], describes(view, t) {
            if t.byteCount > 0 { UnsafeMutableRawPointer(mutating: view.data!).copyMemory(from: t.storage.pointer, byteCount: t.byteCount) }
            continue
        }
        // An output may share storage with a caller's input (e.g. through Identity); the caller
        // may free or reuse that input first, so such outputs get their own copy.
        let owned = t.storage.isBorrowed ? Tensor(dtype: t.dtype, shape: t.shape, storage: t.storage.copy()) : t
        let handle = TensorHandle(owned)
        outputs[i] = HandleRegistry.shared.register(handle)
        views?[i] = kerf_tensor_view(dtype: owned.dtype.rawValue, rank: owned.rank, dims: handle.dims.map { UnsafePointer($0) },
                                     data: UnsafeRawPointer(owned.storage.pointer), byte_size: owned.byteCount)
    }
}

/// True when `view` describes a tensor of t's dtype, dims and byte size, with a buffer for it.
private func describes(_ view: kerf_tensor_view, _ t: Tensor) -> Bool {
    guard t.dtype != .string, view.dtype == t.dtype.rawValue, view.rank == t.rank, view.byte_size == t.byteCount,
          view.data != nil || t.byteCount == 0, t.rank == 0 || view.dims != nil else { return false }
    for d in 0..<t.rank where view.dims![d] != Int64(t.shape[d]) { return false }
    return true
}

@c @implementation
public func kerf_session_plan(_ session: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    out?.pointee = nil
    return guarded {
        let s = try HandleRegistry.shared.resolve(session, as: SessionHandle.self, "session")
        try argument(out != nil, "out is NULL")
        try storeString(s.session.plan.joined(separator: "\n"), out)
    }
}
