import KerfCore
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

/// Layout of `kerf_session_options` (include/kerf.h). Fields are only appended; a caller built
/// against an older header passes a smaller struct_size, and fields past it keep their defaults.
struct kerf_session_options {
    var struct_size: Int
    var threads: Int32
    var optimization_level: Int32
    var sparse_kernels: Int32  // ABI 1.2
    var memory_limit: UInt64   // ABI 1.7
}

/// struct_size of the ABI 1.0 / 1.1 struct (up to optimization_level).
private let sessionOptionsSizeV1 = MemoryLayout<kerf_session_options>.offset(of: \.sparse_kernels)!
/// Where memory_limit starts (a struct_size past it + 8 has it).
private let memoryLimitOffset = MemoryLayout<kerf_session_options>.offset(of: \.memory_limit)!

@_cdecl("kerf_session_options_init")
public func kerf_session_options_init(_ options: UnsafeMutableRawPointer?) {
    guard let options else { return }
    // stride, not size: C's sizeof includes the tail padding.
    options.storeBytes(of: kerf_session_options(struct_size: MemoryLayout<kerf_session_options>.stride, threads: 0,
                                                optimization_level: 1, sparse_kernels: 1, memory_limit: 0),
                       as: kerf_session_options.self)
}

@_cdecl("kerf_session_create")
public func kerf_session_create(_ model: OpaquePointer?, _ options: UnsafeRawPointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    out?.pointee = nil
    return guarded {
        let m = try HandleRegistry.shared.resolve(model, as: ModelHandle.self, "model")
        try argument(out != nil, "out is NULL")
        var opts = SessionOptions()
        if let options {
            let size = options.load(as: Int.self)
            try argument(size >= sessionOptionsSizeV1,
                         "options->struct_size is \(size); call kerf_session_options_init first")
            let threads = options.load(fromByteOffset: MemoryLayout<kerf_session_options>.offset(of: \.threads)!, as: Int32.self)
            let level = options.load(fromByteOffset: MemoryLayout<kerf_session_options>.offset(of: \.optimization_level)!, as: Int32.self)
            let sparse = size >= sessionOptionsSizeV1 + 4
                ? options.load(fromByteOffset: sessionOptionsSizeV1, as: Int32.self) : 1
            let memoryLimit = size >= memoryLimitOffset + 8
                ? options.load(fromByteOffset: memoryLimitOffset, as: UInt64.self) : 0
            try argument(threads >= 0 && threads <= 1024, "threads must be between 0 and 1024, got \(threads)")
            try argument(level == 0 || level == 1, "optimization_level must be 0 or 1")
            try argument(sparse == 0 || sparse == 1, "sparse_kernels must be 0 or 1")
            opts = SessionOptions(threads: Int(threads), optimizationLevel: Int(level), sparseKernels: sparse == 1,
                                  memoryLimit: memoryLimit > UInt64(Int.max) ? Int.max : Int(memoryLimit))
        }
        out!.pointee = HandleRegistry.shared.register(SessionHandle(try Session(model: m.model, options: opts), m))
    }
}

@_cdecl("kerf_session_free")
public func kerf_session_free(_ session: OpaquePointer?) {
    HandleRegistry.shared.release(session, as: SessionHandle.self)
}

@_cdecl("kerf_session_run")
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

/// Layout of `kerf_tensor_view` (include/kerf.h, ABI 1.4).
struct kerf_tensor_view {
    var dtype: Int32
    var rank: Int
    var dims: UnsafePointer<Int64>?
    var data: UnsafeRawPointer?
    var byte_size: Int
}

@_cdecl("kerf_session_run_views")
public func kerf_session_run_views(_ session: OpaquePointer?,
                                   _ inputNames: UnsafePointer<UnsafePointer<CChar>?>?, _ inputs: UnsafeRawPointer?,
                                   _ inputCount: Int,
                                   _ outputNames: UnsafePointer<UnsafePointer<CChar>?>?,
                                   _ outputs: UnsafeMutablePointer<OpaquePointer?>?, _ outputViews: UnsafeMutableRawPointer?,
                                   _ outputCount: Int) -> Int32 {
    runViews(session, inputNames, inputs, inputCount, outputNames, outputs, outputViews, outputCount, copyInto: false)
}

@_cdecl("kerf_session_run_into")
public func kerf_session_run_into(_ session: OpaquePointer?,
                                  _ inputNames: UnsafePointer<UnsafePointer<CChar>?>?, _ inputs: UnsafeRawPointer?,
                                  _ inputCount: Int,
                                  _ outputNames: UnsafePointer<UnsafePointer<CChar>?>?,
                                  _ outputs: UnsafeMutablePointer<OpaquePointer?>?, _ outputViews: UnsafeMutableRawPointer?,
                                  _ outputCount: Int) -> Int32 {
    runViews(session, inputNames, inputs, inputCount, outputNames, outputs, outputViews, outputCount, copyInto: true)
}

private func runViews(_ session: OpaquePointer?, _ inputNames: UnsafePointer<UnsafePointer<CChar>?>?, _ inputs: UnsafeRawPointer?,
                      _ inputCount: Int, _ outputNames: UnsafePointer<UnsafePointer<CChar>?>?,
                      _ outputs: UnsafeMutablePointer<OpaquePointer?>?, _ outputViews: UnsafeMutableRawPointer?,
                      _ outputCount: Int, copyInto: Bool) -> Int32 {
    clearOutputs(outputs, outputCount)
    return guarded {
        let s = try HandleRegistry.shared.resolve(session, as: SessionHandle.self, "session")
        try checkCounts(inputCount, inputNames != nil && inputs != nil, outputCount, outputs)
        try argument(!copyInto || outputCount == 0 || outputViews != nil, "output_views is NULL")
        let views = inputs?.assumingMemoryBound(to: kerf_tensor_view.self)
        let feeds = try feedsByName(inputNames, inputCount) { i in
            let v = views![i]
            return try describedTensor(v.dtype, v.dims, v.rank, UnsafeMutableRawPointer(mutating: v.data), v.byte_size)
        }
        try run(s, feeds, outputNames, outputs!, outputViews?.assumingMemoryBound(to: kerf_tensor_view.self), outputCount,
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

@_cdecl("kerf_session_plan")
public func kerf_session_plan(_ session: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    out?.pointee = nil
    return guarded {
        let s = try HandleRegistry.shared.resolve(session, as: SessionHandle.self, "session")
        try argument(out != nil, "out is NULL")
        try storeString(s.session.plan.joined(separator: "\n"), out)
    }
}
