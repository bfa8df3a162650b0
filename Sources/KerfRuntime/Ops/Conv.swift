import KerfCore
import KerfKernels

// Conv: N-d, grouped (depthwise included). 2-D convolutions with constant weights run on
// oneDNN's direct kernels where it has them; the rest via im2col + GEMM per image and group,
// with the bias, an optional fused residual and activation applied to the output in place.

enum ConvOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Conv"] = { c in try ConvOperator(c) }
        r["\(FusedQuantizedOps.domain):\(ChannelsLast.conv)"] = { c in try ConvOperator(c, channelsLast: true) }
    }
}

/// Conv weights laid out for the GEMM: per group, `rows` output channels of `rowLength`
/// (= C/group * kernel size) floats, where `rows` is the group's channel count padded up to a
/// multiple of 16 with zero rows.
///
/// oneDNN computes the last rows of a GEMM whose M is not a multiple of 16 with a tail kernel
/// that sums in another order, so those output channels would round differently from the rest
/// (visible on ill-conditioned models such as light SqueezeNet). Padding keeps every channel on
/// the same kernel, as ONNX Runtime's are.
struct ConvWeights {
    let source: TensorStorage
    let shape: [Int]
    let group: Int
    let channelsPerGroup: Int
    let rows: Int
    let rowLength: Int
    /// The weights themselves when no group needs padding rows (no copy), else a padded copy.
    let storage: TensorStorage
    var values: UnsafePointer<Float> { UnsafePointer(storage.pointer.assumingMemoryBound(to: Float.self)) }

    init(_ w: Tensor, group: Int) throws {
        source = w.storage
        shape = w.shape
        self.group = group
        let perGroup = w.shape[0] / group, length = w.shape[1...].reduce(1, *)
        let padded = perGroup > 16 ? (perGroup + 15) / 16 * 16 : perGroup
        channelsPerGroup = perGroup
        rowLength = length
        rows = padded
        if padded == perGroup {
            storage = w.storage
            return
        }
        let copy = try TensorStorage(byteCount: group * padded * length * MemoryLayout<Float>.stride)  // zeroed
        let v = copy.pointer.assumingMemoryBound(to: Float.self)
        w.withElements(as: Float.self) { src in
            for g in 0..<group {
                for r in 0..<perGroup {
                    for j in 0..<length { v[(g * padded + r) * length + j] = src[(g * perGroup + r) * length + j] }
                }
            }
        }
        storage = copy
    }
}

/// Y[N, M, out...] = activation(conv(X[N, C, in...], W[M, C/group, k...]) + B[M] [+ R]), where
/// the residual R (input 3) is there when the optimizer fused a following Add into the Conv.
/// As `kerf.NhwcConv` (`channelsLast`), X, Y and R are 2-D images in NHWC: X[N, H, W, C] gives
/// Y[N, OH, OW, M]; W stays [M, C/group, kh, kw].
/// Weights given as initializers are prepared once; scratch buffers are reused across runs
/// (each operator serves one run at a time: its plan step's lock).
///
/// Constant float weights no feed can replace are the operator's own (`takeConstant`): once
/// oneDNN's direct convolution holds its copy of them, the operator lets go of its plain
/// copies, and rebuilds them from oneDNN's if a later run needs them.
final class ConvOperator: Operator {
    let window: WindowAttributes
    let group: Int
    let activation: Activation
    private var prepared: ConvWeights?
    /// W's shape when the operator owns W (the run's inputs lack it then).
    private var ownedShape: [Int]?
    /// An owned W as given, while no oneDNN convolution holds it (nil otherwise).
    private var owned: Tensor?
    /// The bias given as an initializer, if any (the oneDNN path copies it once).
    private var preparedBias: TensorStorage?
    /// oneDNN's direct convolution for the last input shape and residual kind, when it has one.
    private var direct: (shape: [Int], residual: Bool, convolution: OneDnnConvolution?)?
    private let threads: Int
    /// Set by the optimizer (`kerf.residual`): input 3 is added before the activation.
    private var residualInput = false
    /// X, Y and the residual are NHWC (`kerf.NhwcConv`).
    let channelsLast: Bool

    init(window: WindowAttributes, group: Int, activation: Activation = .none, threads: Int = 1) {
        self.window = window
        self.group = group
        self.activation = activation
        self.threads = threads
        channelsLast = false
    }

    init(_ c: OperatorContext, channelsLast: Bool = false) throws {
        self.channelsLast = channelsLast
        window = try WindowAttributes(c)
        group = try c.int("group", default: 1)
        guard group >= 1 else { throw KerfError.invalidModel("Conv group must be >= 1") }
        activation = try c.fusedActivation()
        threads = c.options.resolvedThreads
        residualInput = try c.int(FusedAttributes.residual, default: 0) != 0
        if let w = c.constant(1), w.dtype == .float, w.rank >= 3, w.shape[0] % group == 0 {
            prepared = try ConvWeights(w, group: group)
            if let taken = c.takeConstant(1) {
                owned = taken
                ownedShape = taken.shape
            }
        }
        if let b = c.constant(2), b.dtype == .float { preparedBias = b.storage }
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        if let x = inputs.first ?? nil, x.dtype == .double, !channelsLast {
            // Double (training's gradient checks): the reference path, nothing fused.
            guard activation == .none, !residualInput else { throw KerfError.unsupported("Conv of double with a fused activation or residual") }
            return [try doubleConvolution(x, try inputs.required(1, "W"), inputs.optional(2) ?? nil, window: window, group: group,
                                          threads: threads)]
        }
        return try withFloat32(inputs) { ins in
            // W is nil when the operator owns it.
            let x = try ins.required(0, "X"), w = ownedShape == nil ? try ins.required(1, "W") : nil, b = ins.optional(2) ?? nil
            let wShape = w?.shape ?? ownedShape!
            guard residualInput else { return [try compute(x, w, wShape, b, residual: nil, activation: activation)] }
            let residual = try ins.required(3, "fused residual")
            if residual.dtype == .float, residual.shape == (try outputShape(x, wShape)) {
                return [try compute(x, w, wShape, b, residual: residual, activation: activation)]
            }
            // A residual that broadcasts: add it as the Add node would have, then activate.
            let y = try compute(x, w, wShape, b, residual: nil, activation: .none)
            return [try applying(activation, to: try arithmetic(.add, y, residual))]
        }
    }

    /// Channels-last with a fused residual that nothing else references: the output is written
    /// over the residual (oneDNN adds it where it lies) instead of into a new tensor.
    func run(consuming inputs: inout [Tensor?]) throws -> [Tensor] {
        guard channelsLast, residualInput, inputs.count > 3, var residual = inputs.take(3) else { return try run(inputs) }
        let x = inputs[0] ?? nil, b = inputs.count > 2 ? inputs[2] ?? nil : nil
        let w = ownedShape == nil && inputs.count > 1 ? inputs[1] ?? nil : nil
        if let x, x.dtype == .float, residual.dtype == .float, let wShape = w?.shape ?? ownedShape,
           residual.shape == (try outputShape(x, wShape)), residual.isUniquelyOwned() {
            return [try computeChannelsLast(x, w, wShape, b, residual: residual, activation: activation, into: residual)]
        }
        inputs[3] = residual
        return try run(inputs)
    }

    /// The output shape for X and W (nil when they do not fit: `compute` reports why).
    private func outputShape(_ x: Tensor, _ wShape: [Int]) throws -> [Int]? {
        guard x.rank >= 3, wShape.count == x.rank else { return nil }
        let spatial = channelsLast ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        guard let (g, _) = try? window.geometry(input: spatial, kernel: Array(wShape[2...])) else { return nil }
        return channelsLast ? [x.shape[0]] + g.outputSize + [wShape[0]] : [x.shape[0], wShape[0]] + g.outputSize
    }

    /// `residual`, when given, has the output's shape and is added after the bias. `w` is the
    /// run's W, nil when the operator owns W (of shape `wShape`).
    private func compute(_ x: Tensor, _ w: Tensor?, _ wShape: [Int], _ b: Tensor?, residual: Tensor?, activation: Activation) throws -> Tensor {
        if channelsLast { return try computeChannelsLast(x, w, wShape, b, residual: residual, activation: activation) }
        return try computeChannelsFirst(x, w, wShape, b, residual: residual, activation: activation, direct: true)
    }

    /// `compute` for NHWC tensors: oneDNN's direct convolution where they lie, else the NCHW
    /// path between two transposes.
    /// `into`, when given, is a dense float tensor of the output's shape that nothing else reads
    /// (the residual itself): the direct convolution writes there.
    private func computeChannelsLast(_ x: Tensor, _ w: Tensor?, _ wShape: [Int], _ b: Tensor?, residual: Tensor?,
                                     activation: Activation, into: Tensor? = nil) throws -> Tensor {
        try checkTypes(x, w, b)
        guard x.rank == 4, wShape.count == 4 else {
            throw KerfError.shapeMismatch("Conv X \(x.shape) (channels-last) and W \(wShape) ranks do not fit")
        }
        let batch = x.shape[0], m = wShape[0], kernel = Array(wShape[2...])
        try checkShapes(channels: x.shape[3], wShape: wShape, b: b, x: x)
        if let ks = window.kernelShape, ks != kernel { throw KerfError.shapeMismatch("kernel_shape \(ks) differs from W \(wShape)") }
        let (g, _) = try window.geometry(input: [x.shape[1], x.shape[2]], kernel: kernel)
        let shape = [batch] + g.outputSize + [m]
        try checkedElementCount(shape, dtype: .float, "Conv")
        let out = try into ?? Tensor(uninitialized: .float, shape: shape)
        if g.outputCount == 0 || batch == 0 { return out }
        if activation == self.activation, let convolution = directConvolution(x, w, b, geometry: g, residual: residual != nil),
           convolution.run(x.storage.pointer.assumingMemoryBound(to: Float.self), out.storage.pointer.assumingMemoryBound(to: Float.self),
                           residual: residual.map { UnsafePointer($0.storage.pointer.assumingMemoryBound(to: Float.self)) }) {
            return out
        }
        let y = try computeChannelsFirst(try transpose(x, perm: [0, 3, 1, 2], threads: threads), w, wShape, b,
                                         residual: try residual.map { try transpose($0, perm: [0, 3, 1, 2], threads: threads) },
                                         activation: activation, direct: false)
        return try transpose(y, perm: [0, 2, 3, 1], threads: threads)
    }

    private func checkTypes(_ x: Tensor, _ w: Tensor?, _ b: Tensor?) throws {
        guard x.dtype == .float, w == nil || w!.dtype == .float, b == nil || b!.dtype == .float else {
            throw KerfError.unsupported("Conv supports float types, got \(x.dtype)")
        }
    }

    private func checkShapes(channels: Int, wShape: [Int], b: Tensor?, x: Tensor) throws {
        let m = wShape[0]
        guard channels % group == 0, m % group == 0, wShape[1] == channels / group else {
            throw KerfError.shapeMismatch("Conv W \(wShape) does not fit X \(x.shape)\(channelsLast ? " (channels-last)" : "") with group \(group)")
        }
        if let b, b.count != m { throw KerfError.shapeMismatch("Conv B has \(b.count) elements, expected \(m)") }
    }

    /// `compute` for NCHW tensors; `direct` allows oneDNN's direct convolution.
    private func computeChannelsFirst(_ x: Tensor, _ w: Tensor?, _ wShape: [Int], _ b: Tensor?, residual: Tensor?, activation: Activation,
                                      direct: Bool) throws -> Tensor {
        try checkTypes(x, w, b)
        guard x.rank >= 3, wShape.count == x.rank else { throw KerfError.shapeMismatch("Conv X \(x.shape) and W \(wShape) ranks do not fit") }
        let batch = x.shape[0], channels = x.shape[1], m = wShape[0]
        let spatial = Array(x.shape[2...]), kernel = Array(wShape[2...])
        try checkShapes(channels: channels, wShape: wShape, b: b, x: x)
        if let ks = window.kernelShape, ks != kernel { throw KerfError.shapeMismatch("kernel_shape \(ks) differs from W \(wShape)") }
        let (g, _) = try window.geometry(input: spatial, kernel: kernel)
        try checkedElementCount([batch, m] + g.outputSize, dtype: .float, "Conv")
        let out = try Tensor(uninitialized: .float, shape: [batch, m] + g.outputSize)
        let cg = channels / group, mg = m / group
        let kc = g.kernelCount, oc = g.outputCount, ic = g.inputCount
        if oc == 0 || batch == 0 { return out }

        let pointwise = kc == 1 && g.strides.allSatisfy { $0 == 1 } && g.padsBegin.allSatisfy { $0 == 0 } && oc == ic
        let rp = residual.map { UnsafePointer($0.storage.pointer.assumingMemoryBound(to: Float.self)) }
        // A 1x1 convolution is one GEMM on the input as it lies; oneDNN's direct kernels need
        // channels-last images, and the two layout changes cost more than they save there.
        // A 1-D convolution runs as a 2-D one over images of height 1 (same memory layouts).
        let planar = g.inputSize.count == 1 ? WindowGeometry(lifting: g) : g
        if direct, !pointwise, activation == self.activation, let convolution = directConvolution(x, w, b, geometry: planar, residual: residual != nil),
           convolution.run(x.storage.pointer.assumingMemoryBound(to: Float.self), out.storage.pointer.assumingMemoryBound(to: Float.self),
                           residual: rp, threads: threads) {
            return out
        }

        // A fed W (or one that replaced an overridable initializer) is prepared per run.
        let weights = try gemmWeights(w)
        let padded = weights.rows != mg
        // Images run in parallel, each worker with single-threaded GEMMs: many small GEMMs split
        // across OpenMP threads cost more than they gain. One image leaves the threads to the GEMM.
        let workers = batch > 1 ? min(threads, batch) : 1
        // Per worker, from the process-wide pool: im2col columns, then the padded GEMM rows. The
        // columns (kernel size times output positions) can be far larger than the output: checked
        // against the allocation limit first, as the pool's buffers cannot report a failure.
        if !pointwise {
            let (rows, o0) = cg.multipliedReportingOverflow(by: kc)
            let (perImage, o1) = rows.multipliedReportingOverflow(by: oc)
            let (bytes, o2) = perImage.multipliedReportingOverflow(by: workers * MemoryLayout<Float>.stride)
            try MemoryLimit.check(byteCount: o0 || o1 || o2 ? -1 : bytes,
                                  for: "Conv im2col columns [\(cg) x \(kc), \(oc)] x \(workers) of float")
        }
        let scratch = ScratchPool.shared.take(2 * workers)
        defer { ScratchPool.shared.give(scratch) }
        for w in 0..<workers {
            if !pointwise { scratch[w].reserve(cg * kc * oc * MemoryLayout<Float>.stride) }
            if padded { scratch[workers + w].reserve(weights.rows * oc * MemoryLayout<Float>.stride) }
        }
        let xp = x.storage.pointer.assumingMemoryBound(to: Float.self)
        let yp = out.storage.pointer.assumingMemoryBound(to: Float.self)
        let bp = b.map { $0.storage.pointer.assumingMemoryBound(to: Float.self) }
        let columnPointers = scratch[..<workers].map { $0.pointer?.assumingMemoryBound(to: Float.self) }
        let rowPointers = scratch[workers...].map { $0.pointer?.assumingMemoryBound(to: Float.self) }
        do {
            let wv = weights.values
            parallelFor(batch, threads: workers) { worker, n in
                for gi in 0..<group {
                    let xg = xp + (n * channels + gi * cg) * ic
                    let source: UnsafePointer<Float>
                    if pointwise {
                        source = UnsafePointer(xg)
                    } else {
                        im2col(xg, channels: cg, geometry: g, columns: columnPointers[worker]!)
                        source = UnsafePointer(columnPointers[worker]!)
                    }
                    let y = yp + (n * m + gi * mg) * oc
                    sgemm(transA: false, transB: false, m: weights.rows, n: oc, k: cg * kc, alpha: 1,
                          a: wv + gi * weights.rows * weights.rowLength, lda: weights.rowLength,
                          b: source, ldb: oc, beta: 0, c: padded ? rowPointers[worker]! : y, ldc: oc)
                    if padded { y.update(from: rowPointers[worker]!, count: mg * oc) }
                    if let rp {
                        let r = rp + (n * m + gi * mg) * oc
                        for j in 0..<mg {
                            let v = bp?[gi * mg + j] ?? 0, row = y + j * oc, rrow = r + j * oc
                            for i in 0..<oc { row[i] = (row[i] + v) + rrow[i] }
                        }
                    } else if let bp {
                        for j in 0..<mg { let v = bp[gi * mg + j]; let row = y + j * oc; for i in 0..<oc { row[i] += v } }
                    }
                    activation.apply(y, count: mg * oc)
                }
            }
        }
        return out
    }
}

extension ConvOperator {
    /// True when `w` (nil: the operator's own W) is the constant W prepared at session creation.
    private func isPrepared(_ w: Tensor?) -> Bool {
        guard let w else { return ownedShape != nil }
        return ownedShape == nil && prepared.map { $0.source === w.storage && $0.shape == w.shape } ?? false
    }

    /// An owned W as given: kept, or rebuilt from the oneDNN convolution holding it.
    private func ownedWeights() throws -> Tensor {
        if let owned { return owned }
        var w = try Tensor(uninitialized: .float, shape: ownedShape!)
        guard let convolution = direct?.convolution,
              w.withMutableElements(as: Float.self, { convolution.copyWeights(into: $0.baseAddress!) }) else {
            throw KerfError.internal("Conv: oneDNN could not give back the weights")
        }
        return w
    }

    /// W laid out for the GEMM path: prepared once for the constant W (rebuilt, and then kept,
    /// when a oneDNN convolution held the only copy), per run for a fed one.
    fileprivate func gemmWeights(_ w: Tensor?) throws -> ConvWeights {
        if isPrepared(w), let prepared { return prepared }
        if let w, !isPrepared(w) { return try ConvWeights(w, group: group) }
        let rebuilt = try ownedWeights()
        owned = rebuilt
        prepared = try ConvWeights(rebuilt, group: group)
        return prepared!
    }

    /// oneDNN's direct kernel for this input shape (a 1-D one, NCL, as images of height 1 with
    /// `geometry` lifted so), when W and B are the session's constants
    /// (prepared once per shape) and oneDNN has a fast implementation for the geometry. An
    /// owned W is then held by the convolution only.
    fileprivate func directConvolution(_ x: Tensor, _ w: Tensor?, _ b: Tensor?, geometry g: WindowGeometry,
                                       residual: Bool) -> OneDnnConvolution? {
        guard isPrepared(w), b == nil || b!.storage === preparedBias, x.rank == 4 || x.rank == 3 && !channelsLast else { return nil }
        if let direct, direct.shape == x.shape, direct.residual == residual { return direct.convolution }
        guard let weights = try? w ?? ownedWeights() else { return nil }
        direct = nil  // free the previous shape's buffers first
        let bias = b.map { UnsafePointer($0.storage.pointer.assumingMemoryBound(to: Float.self)) }
        let convolution = weights.withElements(as: Float.self) { wv in
            OneDnnConvolution(geometry: g, batch: x.shape[0], channels: x.shape[channelsLast ? 3 : 1], outChannels: weights.shape[0],
                              group: group, weights: wv.baseAddress!, bias: bias, activation: activation, residual: residual,
                              channelsLast: channelsLast)
        }
        direct = (x.shape, residual, convolution)
        if ownedShape != nil {
            if convolution != nil {
                owned = nil
                prepared = nil
            } else if owned == nil {
                owned = weights  // the GEMM path needs them now
            }
        }
        return convolution
    }
}

/// Conv of explicit tensors, with nothing prepared in advance.
func conv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, window: WindowAttributes, group: Int) throws -> Tensor {
    try ConvOperator(window: window, group: group).run([x, w, b])[0]
}
