import CDNNL

/// The backward pass of a float convolution of fixed shape (1 to 3 spatial dims, any group),
/// run by oneDNN's backward-data or backward-weights primitive:
/// - `.data`: dx[N, C, in...] from dy[N, M, out...] and w[M, C/group, k...];
/// - `.weights`: dw[M, C/group, k...] (and db[M]) from dy and x.
///
/// The caller's tensors are dense row-major (NCHW). oneDNN picks the layouts its fastest
/// kernels want (blocked channels on AVX-512); operands are reordered into them and results
/// back on every run, in buffers borrowed from `ScratchPool.shared` for the run. The reorders
/// and the primitive run on the calling thread's OpenMP team. Not thread-safe: one `run` at a
/// time.
public final class OneDnnConvolutionBackward {
    public enum Kind: Sendable { case data, weights(bias: Bool) }

    /// The oneDNN implementation chosen, e.g. "jit:avx512_common".
    public let implementation: String
    public let kind: Kind
    private let engine: dnnl_engine_t
    private var stream: dnnl_stream_t?
    private var primitive: dnnl_primitive_t?
    private var scratchpadDesc = dnnl_memory_desc_t()
    private var scratchpadMemory: dnnl_memory_t?
    /// In execution-argument order: for `.data` dy, w, dx; for `.weights` dy, x, dw[, db].
    private var operands: [Operand] = []

    /// One argument of the primitive: the caller's memory and, when oneDNN wants another layout,
    /// a memory of that layout (in the run's scratch) and the reorder between the two.
    private final class Operand {
        let argument: Int32
        let isOutput: Bool
        var userDesc: dnnl_memory_desc_t, primitiveDesc: dnnl_memory_desc_t
        var user: dnnl_memory_t?, converted: dnnl_memory_t?, reorder: dnnl_primitive_t?
        var convertedBytes: Int { converted == nil ? 0 : alignedBytes(dnnl_memory_desc_get_size(&primitiveDesc)) }

        init?(argument: Int32, isOutput: Bool, user userDesc: dnnl_memory_desc_t, primitive primitiveDesc: dnnl_memory_desc_t,
              engine: dnnl_engine_t) {
            self.argument = argument
            self.isOutput = isOutput
            self.userDesc = userDesc
            self.primitiveDesc = primitiveDesc
            guard let user = makeMemory(userDesc, engine) else { return nil }
            self.user = user
            var a = userDesc, b = primitiveDesc
            if dnnl_memory_desc_equal(&a, &b) != 0 { return }
            guard let converted = makeMemory(primitiveDesc, engine) else { return nil }
            self.converted = converted
            var pd: dnnl_primitive_desc_t?
            let made = isOutput ? dnnl_reorder_primitive_desc_create(&pd, &b, engine, &a, engine, nil)
                                : dnnl_reorder_primitive_desc_create(&pd, &a, engine, &b, engine, nil)
            guard made == dnnl_success else { return nil }
            defer { dnnl_primitive_desc_destroy(pd) }
            guard dnnl_primitive_create(&reorder, pd) == dnnl_success else { return nil }
        }

        /// The memory the primitive reads or writes.
        var forPrimitive: dnnl_memory_t? { converted ?? user }

        func convert(_ stream: dnnl_stream_t?) -> Bool {
            guard let reorder else { return true }
            let args = isOutput ? [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: converted), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: user)]
                                : [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: user), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: converted)]
            return dnnl_primitive_execute(reorder, stream, 2, args) == dnnl_success
        }

        deinit {
            if let reorder { dnnl_primitive_destroy(reorder) }
            if let converted { dnnl_memory_destroy(converted) }
            if let user { dnnl_memory_destroy(user) }
        }
    }

    /// Prepares the backward pass of `kind` for `shape`. Returns nil when oneDNN cannot run it
    /// or offers only its reference implementation (callers keep their own path then).
    public init?(_ kind: Kind, shape s: ConvolutionShape) {
        let g = s.geometry, rank = g.inputSize.count
        guard (1...3).contains(rank), let engine = OneDnnEngine.shared, s.batch > 0, s.group >= 1,
              s.channels % s.group == 0, s.outChannels % s.group == 0, g.outputCount > 0, g.inputCount > 0 else { return nil }
        self.kind = kind
        self.engine = engine
        let padsEnd = (0..<rank).map { d -> Int64 in
            let span = (g.outputSize[d] - 1) * g.strides[d] + (g.kernel[d] - 1) * g.dilations[d] + 1
            return Int64(max(0, span - g.inputSize[d] - g.padsBegin[d]))
        }
        let strides = g.strides.map(Int64.init), dilations = g.dilations.map { Int64($0 - 1) }, padL = g.padsBegin.map(Int64.init)
        let xDims = [s.batch, s.channels] + g.inputSize, yDims = [s.batch, s.outChannels] + g.outputSize
        let wDims = s.group == 1 ? [s.outChannels, s.channels] + g.kernel
                                 : [s.group, s.outChannels / s.group, s.channels / s.group] + g.kernel
        guard let xUser = denseDesc(xDims), let yUser = denseDesc(yDims), let wUser = denseDesc(wDims), let bUser = denseDesc([s.outChannels]),
              var xAny = anyDesc(xDims), var yAny = anyDesc(yDims), var wAny = anyDesc(wDims) else { return nil }
        let withBias: Bool
        if case .weights(let b) = kind { withBias = b } else { withBias = false }
        let bDesc = UnsafeMutablePointer<dnnl_memory_desc_t>.allocate(capacity: 1)
        bDesc.initialize(to: bUser)
        defer { bDesc.deallocate() }
        let biasArgument: UnsafePointer<dnnl_memory_desc_t>? = withBias ? UnsafePointer(bDesc) : nil

        // The forward primitive descriptor oneDNN wants as a hint for the backward ones.
        var forwardDesc = dnnl_convolution_desc_t()
        guard dnnl_dilated_convolution_forward_desc_init(&forwardDesc, dnnl_forward_training, dnnl_convolution_direct, &xAny, &wAny,
                                                         biasArgument, &yAny, strides, dilations, padL, padsEnd) == dnnl_success
        else { return nil }
        var hint: dnnl_primitive_desc_t?
        guard withUnsafePointer(to: &forwardDesc, { dnnl_primitive_desc_create(&hint, $0, nil, engine, nil) }) == dnnl_success else { return nil }
        defer { dnnl_primitive_desc_destroy(hint) }

        var desc = dnnl_convolution_desc_t()
        switch kind {
        case .data:
            guard dnnl_dilated_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &xAny, &wAny, &yAny, strides, dilations,
                                                                   padL, padsEnd) == dnnl_success else { return nil }
        case .weights:
            guard dnnl_dilated_convolution_backward_weights_desc_init(&desc, dnnl_convolution_direct, &xAny, &wAny, biasArgument,
                                                                      &yAny, strides, dilations, padL, padsEnd) == dnnl_success
            else { return nil }
        }
        var attributes: dnnl_primitive_attr_t?
        guard dnnl_primitive_attr_create(&attributes) == dnnl_success else { return nil }
        defer { dnnl_primitive_attr_destroy(attributes) }
        guard dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user) == dnnl_success else { return nil }
        var pd: dnnl_primitive_desc_t?
        guard withUnsafePointer(to: &desc, { dnnl_primitive_desc_create(&pd, $0, attributes, engine, hint) }) == dnnl_success else { return nil }
        defer { dnnl_primitive_desc_destroy(pd) }
        var info: UnsafePointer<CChar>?
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info)
        implementation = info.map { String(cString: $0) } ?? "unknown"
        guard !implementation.hasPrefix("ref"), dnnl_primitive_create(&primitive, pd) == dnnl_success,
              dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success,
              let scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) else { return nil }
        scratchpadDesc = scratchpad.pointee
        guard let scratchpadMemory = makeMemory(scratchpadDesc, engine) else { return nil }
        self.scratchpadMemory = scratchpadMemory

        func chosen(_ query: dnnl_query_t) -> dnnl_memory_desc_t? { dnnl_primitive_desc_query_md(pd, query, 0)?.pointee }
        let wanted: [(Int32, Bool, dnnl_memory_desc_t, dnnl_query_t)]
        switch kind {
        case .data:
            wanted = [(DNNL_ARG_DIFF_DST, false, yUser, dnnl_query_diff_dst_md), (DNNL_ARG_WEIGHTS, false, wUser, dnnl_query_weights_md),
                      (DNNL_ARG_DIFF_SRC, true, xUser, dnnl_query_diff_src_md)]
        case .weights:
            wanted = [(DNNL_ARG_DIFF_DST, false, yUser, dnnl_query_diff_dst_md), (DNNL_ARG_SRC, false, xUser, dnnl_query_src_md),
                      (DNNL_ARG_DIFF_WEIGHTS, true, wUser, dnnl_query_diff_weights_md)]
                + (withBias ? [(DNNL_ARG_DIFF_BIAS, true, bUser, dnnl_query_diff_weights_md)] : [])
        }
        for (argument, isOutput, user, query) in wanted {
            // The bias gradient is the second diff-weights descriptor.
            let primitiveDesc = argument == DNNL_ARG_DIFF_BIAS ? dnnl_primitive_desc_query_md(pd, query, 1)?.pointee : chosen(query)
            guard let primitiveDesc,
                  let operand = Operand(argument: argument, isOutput: isOutput, user: user, primitive: primitiveDesc, engine: engine)
            else { return nil }
            operands.append(operand)
        }
    }

    /// dx from dy and w (`.data` only). Returns false when oneDNN failed (dx is then undefined).
    public func backwardData(_ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>) -> Bool {
        guard case .data = kind else { return false }
        return run([UnsafeMutableRawPointer(mutating: dy), UnsafeMutableRawPointer(mutating: w), UnsafeMutableRawPointer(dx)])
    }

    /// dw (and db when prepared with a bias) from dy and x (`.weights` only). Returns false when
    /// oneDNN failed (the outputs are then undefined).
    public func backwardWeights(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Float>,
                                _ db: UnsafeMutablePointer<Float>?) -> Bool {
        guard case .weights(let bias) = kind, bias == (db != nil) else { return false }
        var pointers = [UnsafeMutableRawPointer(mutating: dy), UnsafeMutableRawPointer(mutating: x), UnsafeMutableRawPointer(dw)]
        if let db { pointers.append(UnsafeMutableRawPointer(db)) }
        return run(pointers)
    }

    private func run(_ pointers: [UnsafeMutableRawPointer]) -> Bool {
        let scratchpadBytes = alignedBytes(dnnl_memory_desc_get_size(&scratchpadDesc))
        let total = operands.reduce(scratchpadBytes) { $0 + $1.convertedBytes }
        let buffer = ScratchPool.shared.take()
        defer { ScratchPool.shared.give(buffer) }
        buffer.reserve(max(64, total))
        guard let base = buffer.pointer else { return false }
        var offset = scratchpadBytes
        guard dnnl_memory_set_data_handle(scratchpadMemory, base) == dnnl_success else { return false }
        for (operand, pointer) in zip(operands, pointers) {
            guard dnnl_memory_set_data_handle(operand.user, pointer) == dnnl_success else { return false }
            if let converted = operand.converted {
                guard dnnl_memory_set_data_handle(converted, base + offset) == dnnl_success else { return false }
                offset += operand.convertedBytes
            }
        }
        for operand in operands where !operand.isOutput {
            guard operand.convert(stream) else { return false }
        }
        let arguments = operands.map { dnnl_exec_arg_t(arg: $0.argument, memory: $0.forPrimitive) }
            + [dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: scratchpadMemory)]
        guard dnnl_primitive_execute(primitive, stream, Int32(arguments.count), arguments) == dnnl_success else { return false }
        for operand in operands where operand.isOutput {
            guard operand.convert(stream) else { return false }
        }
        return dnnl_stream_wait(stream) == dnnl_success
    }

    deinit {
        operands = []
        if let scratchpadMemory { dnnl_memory_destroy(scratchpadMemory) }
        if let primitive { dnnl_primitive_destroy(primitive) }
        if let stream { dnnl_stream_destroy(stream) }
    }
}

private func alignedBytes(_ bytes: Int) -> Int { (bytes + 63) & ~63 }

/// A float descriptor of `dims`, dense row-major.
private func denseDesc(_ dims: [Int]) -> dnnl_memory_desc_t? {
    var strides = [Int64](repeating: 1, count: dims.count)
    for d in stride(from: dims.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * Int64(dims[d + 1]) }
    var desc = dnnl_memory_desc_t()
    return dnnl_memory_desc_init_by_strides(&desc, Int32(dims.count), dims.map(Int64.init), dnnl_f32, strides) == dnnl_success ? desc : nil
}

/// A float descriptor of `dims` in whatever layout the primitive prefers.
private func anyDesc(_ dims: [Int]) -> dnnl_memory_desc_t? {
    var desc = dnnl_memory_desc_t()
    return dnnl_memory_desc_init_by_tag(&desc, Int32(dims.count), dims.map(Int64.init), dnnl_f32, dnnl_format_tag_any) == dnnl_success
        ? desc : nil
}

/// A memory object of `desc` with no buffer yet (bound per run).
private func makeMemory(_ desc: dnnl_memory_desc_t, _ engine: dnnl_engine_t) -> dnnl_memory_t? {
    var m: dnnl_memory_t?
    var d = desc
    return dnnl_memory_create(&m, &d, engine, nil) == dnnl_success ? m : nil
}
