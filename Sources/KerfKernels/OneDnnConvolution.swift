import CDNNL

/// A 2-D float convolution of fixed shape run by oneDNN's direct (brgemm / JIT) kernels:
/// y[N, M, OH, OW] = activation(conv(x[N, C, H, W], w) + b [+ residual]), all NCHW, or with
/// `channelsLast` y[N, OH, OW, M] from x[N, H, W, C], all NHWC.
///
/// oneDNN's fast kernels work on channels-last images. For NCHW tensors `run` converts a chunk
/// of images to NHWC, convolves it and converts the result back (adding the residual on the
/// way); chunks are small enough for both copies to stay in L2. NHWC tensors are convolved
/// where they lie, the whole batch at once on the calling thread's OpenMP team. The channels-last copies and oneDNN's
/// scratchpad are borrowed from `ScratchPool.shared` for the duration of a run. Every output channel is computed by the same
/// kernel in the same summation order (channels are vector lanes), so channels with equal
/// weights get bitwise-equal results. Not thread-safe: one `run` at a time.
public final class OneDnnConvolution {
    /// The oneDNN implementation chosen, e.g. "brgconv:avx512_core".
    public let implementation: String
    /// Images per primitive run.
    public let chunk: Int
    /// True when x and y are NHWC (see the type's contract).
    public let channelsLast: Bool
    private let batch: Int, channels: Int, positions: Int, outChannels: Int, outPositions: Int
    private let activation: Activation
    /// True when oneDNN applies the activation (`Activation.oneDnnEltwise`, nothing added after
    /// the convolution, or the residual added by oneDNN itself).
    private let activationInPrimitive: Bool
    private let engine: dnnl_engine_t
    private var srcDesc: dnnl_memory_desc_t, dstDesc: dnnl_memory_desc_t, scratchpadDesc = dnnl_memory_desc_t()
    /// The weights in oneDNN's layout and as `init` read them.
    private var weightsDesc = dnnl_memory_desc_t(), weightsPlainDesc = dnnl_memory_desc_t()
    private var primitive: dnnl_primitive_t?
    private var weightsMemory: dnnl_memory_t?, biasMemory: dnnl_memory_t?
    private var lanes: [Lane] = []

    /// Prepares the convolution of `batch` images of `channels` channels with weights
    /// w[outChannels, channels / group, kh, kw] (row-major, read only here) and an optional
    /// bias[outChannels]; `residual` says whether `run` will get a tensor to add before the
    /// activation; `channelsLast` selects NHWC tensors. Returns nil when the geometry is not 2-D
    /// or oneDNN offers only a reference or im2col-GEMM implementation for it (callers keep
    /// their own path then).
    public init?(geometry g: WindowGeometry, batch: Int, channels: Int, outChannels: Int, group: Int,
                 weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?, activation: Activation, residual: Bool = false,
                 channelsLast: Bool = false) {
        guard g.inputSize.count == 2, let engine = OneDnnEngine.shared, batch > 0, group >= 1,
              channels % group == 0, outChannels % group == 0, g.outputCount > 0 else { return nil }
        self.engine = engine
        self.batch = batch
        self.channels = channels
        self.positions = g.inputCount
        self.outChannels = outChannels
        self.outPositions = g.outputCount
        self.activation = activation
        self.channelsLast = channelsLast
        // NCHW adds the residual while converting the output back, after the primitive; NHWC
        // has oneDNN add it (a sum post-op over y holding the residual), so a ReLU can follow.
        let eltwise = activation.oneDnnEltwise
        activationInPrimitive = eltwise != nil && (channelsLast || !residual)
        chunk = channelsLast ? batch
                             : OneDnnConvolution.chunk(batch: batch, floatsPerImage: channels * g.inputCount + outChannels * g.outputCount)

        let padsEnd = (0..<2).map { (d: Int) -> Int in
            let span: Int = (g.outputSize[d] - 1) * g.strides[d] + (g.kernel[d] - 1) * g.dilations[d] + 1
            return span - g.inputSize[d] - g.padsBegin[d]
        }
        let weightDims = group == 1 ? [outChannels, channels] + g.kernel
                                    : [group, outChannels / group, channels / group] + g.kernel
        srcDesc = dnnl_memory_desc_t()
        dstDesc = dnnl_memory_desc_t()
        var biasDesc = dnnl_memory_desc_t(), weightsAny = dnnl_memory_desc_t(), weightsPlain = dnnl_memory_desc_t()
        guard describe(&srcDesc, [chunk, channels] + g.inputSize, dnnl_nhwc),
              describe(&dstDesc, [chunk, outChannels] + g.outputSize, dnnl_nhwc),
              describe(&biasDesc, [outChannels], dnnl_x), describe(&weightsAny, weightDims, dnnl_format_tag_any),
              describe(&weightsPlain, weightDims, group == 1 ? dnnl_oihw : dnnl_goihw) else { return nil }
        var desc = dnnl_convolution_desc_t()
        let strides = g.strides.map(Int64.init), dilations = g.dilations.map { Int64($0 - 1) }
        let padL = g.padsBegin.map(Int64.init), padR = padsEnd.map(Int64.init)
        guard dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct, &srcDesc, &weightsAny,
                                                         &biasDesc, &dstDesc, strides, dilations, padL, padR) == dnnl_success else { return nil }
        var attributes: dnnl_primitive_attr_t?
        guard dnnl_primitive_attr_create(&attributes) == dnnl_success else { return nil }
        defer { dnnl_primitive_attr_destroy(attributes) }
        // Each lane brings its own scratchpad: oneDNN's library-managed one is a single
        // process-wide buffer, which lanes running at the same time would share.
        guard dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user) == dnnl_success else { return nil }
        var postOps: dnnl_post_ops_t?
        let sumsResidual = channelsLast && residual
        if activationInPrimitive || sumsResidual, dnnl_post_ops_create(&postOps) == dnnl_success {
            if sumsResidual { dnnl_post_ops_append_sum(postOps, 1) }
            if activationInPrimitive, let (kind, alpha, beta) = eltwise { dnnl_post_ops_append_eltwise(postOps, 1, kind, alpha, beta) }
            dnnl_primitive_attr_set_post_ops(attributes, postOps)
            dnnl_post_ops_destroy(postOps)
        } else if sumsResidual {
            return nil
        }
        var pd: dnnl_primitive_desc_t?
        guard withUnsafePointer(to: &desc, { dnnl_primitive_desc_create(&pd, $0, attributes, engine, nil) }) == dnnl_success else { return nil }
        defer { dnnl_primitive_desc_destroy(pd) }
        var info: UnsafePointer<CChar>?
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info)
        implementation = info.map { String(cString: $0) } ?? "unknown"
        guard !implementation.hasPrefix("ref"), !implementation.contains("gemm:"),
              dnnl_primitive_create(&primitive, pd) == dnnl_success,
              let weightsDesc = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
              let scratchpad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) else { return nil }
        scratchpadDesc = scratchpad.pointee
        self.weightsDesc = weightsDesc.pointee
        weightsPlainDesc = weightsPlain
        weightsMemory = memory(weightsDesc.pointee, engine, oneDnnAllocates)
        biasMemory = memory(biasDesc, engine, oneDnnAllocates)
        guard let weightsMemory, let biasMemory,
              let plainWeights = memory(weightsPlain, engine, UnsafeMutableRawPointer(mutating: weights)) else { return nil }
        defer { dnnl_memory_destroy(plainWeights) }
        var biasPointer: UnsafeMutableRawPointer?
        guard dnnl_memory_get_data_handle(biasMemory, &biasPointer) == dnnl_success, let biasPointer,
              reorder(plainWeights, weightsPlain, into: weightsMemory, weightsDesc.pointee, engine: engine) else { return nil }
        let biasValues = biasPointer.assumingMemoryBound(to: Float.self)
        if let bias { biasValues.update(from: bias, count: outChannels) } else { biasValues.update(repeating: 0, count: outChannels) }
    }

    /// Writes the weights back as `init` read them (w[outChannels, channels / group, kh, kw],
    /// row-major) from oneDNN's copy, for a caller that kept none. False when oneDNN failed.
    public func copyWeights(into w: UnsafeMutablePointer<Float>) -> Bool {
        guard let weightsMemory, let plain = memory(weightsPlainDesc, engine, UnsafeMutableRawPointer(w)) else { return false }
        defer { dnnl_memory_destroy(plain) }
        return reorder(weightsMemory, weightsDesc, into: plain, weightsPlainDesc, engine: engine)
    }

    /// The largest divisor of `batch` whose channels-last input and output fit in about 1 MiB
    /// (half an L2), at least 1.
    static func chunk(batch: Int, floatsPerImage: Int) -> Int {
        let fit = max(1, (1 << 18) / max(1, floatsPerImage))
        return (1...min(batch, fit)).last { batch % $0 == 0 } ?? 1
    }

    /// y = activation(conv(x) + b [+ residual]) in the layout of `channelsLast`, dense
    /// (`residual`, of y's shape, may be `y` itself). NCHW: chunks of images run in parallel on up
    /// to `threads` threads, one oneDNN thread each; a single chunk, and NHWC, run with the
    /// calling thread's OpenMP setting. Returns false when oneDNN failed (y is then undefined).
    public func run(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>? = nil,
                    threads: Int = 1) -> Bool {
        if channelsLast { return runChannelsLast(x, y, residual: residual) }
        let chunks = batch / chunk, workers = max(1, min(threads, chunks))
        while lanes.count < workers {
            guard let lane = Lane(self) else { return false }
            lanes.append(lane)
        }
        let buffers = ScratchPool.shared.take(workers)
        defer { ScratchPool.shared.give(buffers) }
        let srcBytes = aligned(chunk * channels * positions * 4), dstBytes = aligned(chunk * outChannels * outPositions * 4)
        var scratchpad = scratchpadDesc
        let scratchpadBytes = aligned(dnnl_memory_desc_get_size(&scratchpad))
        for (lane, buffer) in zip(lanes, buffers) {
            buffer.reserve(srcBytes + dstBytes + scratchpadBytes)
            guard lane.bind(buffer.pointer!, srcBytes: srcBytes, dstBytes: dstBytes) else { return false }
        }
        var failed = [Bool](repeating: false, count: workers)
        failed.withUnsafeMutableBufferPointer { failed in
            parallelFor(chunks, threads: workers) { worker, c in
                // One chunk runs on the calling thread: its layout changes use the OpenMP team the
                // primitive runs on (no second pool waking next to it).
                if !runChunk(c, lane: lanes[worker], x, y, residual, team: workers == 1 && threads > 1) { failed[worker] = true }
            }
        }
        return !failed.contains(true)
    }

    private func runChannelsLast(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?) -> Bool {
        if lanes.isEmpty {
            guard let lane = Lane(self) else { return false }
            lanes.append(lane)
        }
        let count = batch * outChannels * outPositions
        if let residual, residual != UnsafePointer(y) { y.update(from: residual, count: count) }  // the sum post-op adds y
        let buffers = ScratchPool.shared.take(1)
        defer { ScratchPool.shared.give(buffers) }
        var scratchpad = scratchpadDesc
        buffers[0].reserve(max(64, dnnl_memory_desc_get_size(&scratchpad)))
        let lane = lanes[0]
        guard lane.bind(source: UnsafeMutableRawPointer(mutating: x), destination: UnsafeMutableRawPointer(y),
                        scratchpad: buffers[0].pointer!),
              dnnl_primitive_execute(primitive, lane.stream, Int32(lane.arguments.count), lane.arguments) == dnnl_success,
              dnnl_stream_wait(lane.stream) == dnnl_success else { return false }
        if !activationInPrimitive { activation.apply(y, count: count) }
        return true
    }

    private func runChunk(_ c: Int, lane: Lane, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                          _ residual: UnsafePointer<Float>?, team: Bool) -> Bool {
        let inSize = channels * positions, outSize = outChannels * outPositions
        channelsFirstToLast(x + c * chunk * inSize, images: chunk, channels: channels, positions: positions, lane.src!, team: team)
        guard dnnl_primitive_execute(primitive, lane.stream, Int32(lane.arguments.count), lane.arguments) == dnnl_success,
              dnnl_stream_wait(lane.stream) == dnnl_success else { return false }
        let out = y + c * chunk * outSize
        channelsLastToFirst(lane.dst!, images: chunk, channels: outChannels, positions: outPositions,
                            adding: residual.map { $0 + c * chunk * outSize }, out, team: team)
        if !activationInPrimitive { activation.apply(out, count: chunk * outSize) }
        return true
    }

    private func aligned(_ bytes: Int) -> Int { (bytes + 63) & ~63 }

    /// One worker's stream and memory objects over its borrowed buffer (see `bind`).
    private final class Lane {
        var stream: dnnl_stream_t?
        var srcMemory: dnnl_memory_t?, dstMemory: dnnl_memory_t?, scratchpadMemory: dnnl_memory_t?
        /// The channels-last input and output in the bound buffer.
        private(set) var src: UnsafeMutablePointer<Float>?, dst: UnsafeMutablePointer<Float>?
        var arguments: [dnnl_exec_arg_t] = []

        init?(_ c: OneDnnConvolution) {
            srcMemory = memory(c.srcDesc, c.engine, nil)
            dstMemory = memory(c.dstDesc, c.engine, nil)
            scratchpadMemory = memory(c.scratchpadDesc, c.engine, nil)
            guard dnnl_stream_create(&stream, c.engine, dnnl_stream_default_flags.rawValue) == dnnl_success,
                  srcMemory != nil, dstMemory != nil, scratchpadMemory != nil else { return nil }
            arguments = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: srcMemory), dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: c.weightsMemory),
                         dnnl_exec_arg_t(arg: DNNL_ARG_BIAS, memory: c.biasMemory), dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: dstMemory),
                         dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: scratchpadMemory)]
        }

        /// Points the lane at `buffer`: channels-last input, then output, then scratchpad.
        func bind(_ buffer: UnsafeMutableRawPointer, srcBytes: Int, dstBytes: Int) -> Bool {
            src = buffer.assumingMemoryBound(to: Float.self)
            dst = (buffer + srcBytes).assumingMemoryBound(to: Float.self)
            return bind(source: buffer, destination: buffer + srcBytes, scratchpad: buffer + srcBytes + dstBytes)
        }

        /// Points the lane's memory objects at the given buffers.
        func bind(source: UnsafeMutableRawPointer, destination: UnsafeMutableRawPointer, scratchpad: UnsafeMutableRawPointer) -> Bool {
            dnnl_memory_set_data_handle(srcMemory, source) == dnnl_success
                && dnnl_memory_set_data_handle(dstMemory, destination) == dnnl_success
                && dnnl_memory_set_data_handle(scratchpadMemory, scratchpad) == dnnl_success
        }

        deinit {
            if let srcMemory { dnnl_memory_destroy(srcMemory) }
            if let dstMemory { dnnl_memory_destroy(dstMemory) }
            if let scratchpadMemory { dnnl_memory_destroy(scratchpadMemory) }
            if let stream { dnnl_stream_destroy(stream) }
        }
    }

    deinit {
        lanes = []
        if let primitive { dnnl_primitive_destroy(primitive) }
        if let weightsMemory { dnnl_memory_destroy(weightsMemory) }
        if let biasMemory { dnnl_memory_destroy(biasMemory) }
    }
}

/// The process's oneDNN CPU engine (nil when oneDNN cannot create one).
public enum OneDnnEngine {
    /// True when oneDNN's convolutions can run here.
    public static var available: Bool { shared != nil }

    nonisolated(unsafe) static let shared: dnnl_engine_t? = {
        var engine: dnnl_engine_t?
        return dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success ? engine : nil
    }()
}

private func describe(_ desc: inout dnnl_memory_desc_t, _ dims: [Int], _ tag: dnnl_format_tag_t) -> Bool {
    dnnl_memory_desc_init_by_tag(&desc, Int32(dims.count), dims.map(Int64.init), dnnl_f32, tag) == dnnl_success
}

/// DNNL_MEMORY_ALLOCATE: a memory object whose buffer oneDNN allocates and owns.
private let oneDnnAllocates = UnsafeMutableRawPointer(bitPattern: -1)

/// A memory object over `handle` (or `oneDnnAllocates`).
private func memory(_ desc: dnnl_memory_desc_t, _ engine: dnnl_engine_t, _ handle: UnsafeMutableRawPointer?) -> dnnl_memory_t? {
    var m: dnnl_memory_t?
    var d = desc
    return dnnl_memory_create(&m, &d, engine, handle) == dnnl_success ? m : nil
}

/// Copies `from` into `to` (same dims, any layouts) on a stream of its own.
private func reorder(_ from: dnnl_memory_t, _ fromDesc: dnnl_memory_desc_t, into to: dnnl_memory_t, _ toDesc: dnnl_memory_desc_t,
                     engine: dnnl_engine_t) -> Bool {
    var a = fromDesc, b = toDesc
    var pd: dnnl_primitive_desc_t?, p: dnnl_primitive_t?, stream: dnnl_stream_t?
    guard dnnl_reorder_primitive_desc_create(&pd, &a, engine, &b, engine, nil) == dnnl_success else { return false }
    defer { dnnl_primitive_desc_destroy(pd) }
    guard dnnl_primitive_create(&p, pd) == dnnl_success else { return false }
    defer { dnnl_primitive_destroy(p) }
    guard dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success else { return false }
    defer { dnnl_stream_destroy(stream) }
    let args = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: from), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: to)]
    return dnnl_primitive_execute(p, stream, 2, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success
}

extension Activation {
    /// The oneDNN eltwise post-op (kind, alpha, beta) computing this activation on a primitive's
    /// output while it is in registers; nil for those oneDNN lacks (HardSigmoid), applied after.
    var oneDnnEltwise: (dnnl_alg_kind_t, Float, Float)? {
        switch self {
        case .none, .hardSigmoid: return nil
        case .relu: return (dnnl_eltwise_relu, 0, 0)
        case .leakyRelu(let alpha): return (dnnl_eltwise_relu, alpha, 0)
        case .clip(let lo, let hi): return (dnnl_eltwise_clip, lo, hi)
        case .sigmoid: return (dnnl_eltwise_logistic, 0, 0)
        case .tanh: return (dnnl_eltwise_tanh, 0, 0)
        case .gelu: return (dnnl_eltwise_gelu_erf, 0, 0)
        case .hardSwish: return (dnnl_eltwise_hardswish, 0, 0)
        case .silu: return (dnnl_eltwise_swish, 1, 0)
        }
    }
}
