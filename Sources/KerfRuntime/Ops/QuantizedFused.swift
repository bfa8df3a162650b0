import KerfCore
import KerfCKernels
import KerfKernels

// The int8 products the optimizer fuses quantized chains into (domain "kerf", only in a
// session's private graph; Optimizer/QuantizedFusion.swift has the patterns). What each reads
// is a `QuantizedProductNode`, what each does after its int8 GEMM a `QuantizedEpilogue`.
//
//  kerf.DynamicQuantizedMatMul: float X [..., K] quantized to uint8 as DynamicQuantizeLinear
//      does (or X already quantized, with its run-time scale and zero point), int8 GEMM,
//      Float(acc) * (x_scale * w_scale[j]) (+ bias[j]), then the float stages. It may report
//      its output's range as a second output.
//  kerf.QuantizedMatMul / kerf.QuantizedConv (kerf.NhwcQuantizedConv: channels-last images):
//      8-bit X and per-tensor x, per-tensor or per-output-channel int8 W (zero point 0); integer
//      products are exact on every CPU. The output is float, Float(acc) * x_scale * w_scale[j]
//      + bias[j], or requantized from the integer sums (a fused Relu / Clip narrows the range);
//      with a float bias or a GELU (MatMul only) the float result is quantized as QuantizeLinear
//      does. A MatMul's float output may go on through the head layout or the residual
//      (+ LayerNorm) stage, its requantized output through a byte table.

enum FusedQuantizedOps {
    static let domain = "kerf"

    static func register(_ r: inout [String: OperatorFactory]) {
        r["\(domain):DynamicQuantizedMatMul"] = { c in try DynamicQuantizedMatMul(c) }
        r["\(domain):QuantizedMatMul"] = { c in try QuantizedProduct(c, conv: false) }
        r["\(domain):QuantizedConv"] = { c in try QuantizedProduct(c, conv: true) }
        r["\(domain):\(ChannelsLast.quantizedConv)"] = { c in try QuantizedProduct(c, conv: true, channelsLast: true) }
        registerElementwise(&r)
    }
}

extension OperatorContext {
    /// A constant input the fused op needs at creation.
    func requiredConstant(_ index: Int, _ what: String) throws -> Tensor {
        guard let t = constant(index) else { throw KerfError.invalidModel("\(node.label): \(what) must be a constant") }
        return t
    }

    /// The position of value `name` among the node's inputs (the first, for a value read at
    /// several: each holds it).
    func position(of name: String) throws -> Int {
        guard let i = node.inputs.firstIndex(of: name) else { throw KerfError.invalidModel("\(node.label) does not read '\(name)'") }
        return i
    }

    /// The constant input named `name` the fused op needs at creation.
    func requiredConstant(named name: String, _ what: String) throws -> Tensor {
        try requiredConstant(try position(of: name), what)
    }
}

/// Row-major [rows, n] float output of `x` [..., K] times the packed weight, with an optional
/// fused activation.
final class DynamicQuantizedMatMul: Operator {
    /// Counts this operator's runs in tests (nil otherwise).
    private let probe: RuntimeProbe?
    let weights: PackedInt8Weights
    let weightScales: [Float]
    let bias: [Float]?
    let activation: Activation
    let threads: Int

    /// Whether a second output gives the output's `valueRange` (as [low, high]).
    let reportsRange: Bool

    init(_ c: OperatorContext) throws {
        probe = c.options.probe
        guard let p = try QuantizedProductNode(c.node), p.kind == .dynamicMatMul, let weightZero = p.weightZero else {
            throw KerfError.invalidModel("\(c.node.label) is not a dynamic quantized product")
        }
        let w = try c.requiredConstant(named: p.weight, "W"), zeros = try integerValues(try c.requiredConstant(named: weightZero, "W zero point"))
        guard w.dtype == .int8, w.rank == 2 else { throw KerfError.invalidModel("\(c.node.label): W must be 2-D int8") }
        weights = packWeights(w, offset: 0, k: w.shape[0], n: w.shape[1], zeroPoints: zeros,
                              layout: int8Layout(activation: .uint8, weight: .int8))
        weightScales = try floatScalars(try c.requiredConstant(named: p.weightScale, "W scale"))
        switch p.epilogue.bias {
        case .float(let name, _)?: bias = try c.requiredConstant(named: name, "bias").array(of: Float.self)
        case .integer?: throw KerfError.invalidModel("\(c.node.label): a dynamic product takes a float bias")
        case nil: bias = nil
        }
        activation = p.epilogue.activation
        threads = c.options.resolvedThreads
        reportsRange = c.node.outputs.count > 1 && !c.node.outputs[1].isEmpty
        quantizedX = try p.xQuantization.map { (try c.position(of: $0.scale), try c.position(of: $0.zero)) }
        rangeInput = try p.xRange.map { try c.position(of: $0) }
        heads = try ProductHeads(p.epilogue.heads, c)
        tail = try ProductTail(p.epilogue.residual, c, n: weights.n)
    }

    /// The positions of x_scale and x_zero_point, run-time values given with a uint8 X.
    let quantizedX: (scale: Int, zero: Int)?
    /// The position of X's range (the producer's second output), if given.
    let rangeInput: Int?
    /// The output in head layout.
    let heads: ProductHeads?
    /// A residual and LayerNorm finished in the epilogue.
    let tail: ProductTail?

    /// X's range: given (the producer's second output) or measured.
    private func range(of x: Tensor, _ inputs: [Tensor?]) throws -> (low: Float, high: Float) {
        guard let rangeInput, inputs.count > rangeInput, let given = inputs[rangeInput] else {
            return valueRange(x.storage.pointer.assumingMemoryBound(to: Float.self), count: x.count)
        }
        guard given.dtype == .float, given.count == 2 else { throw KerfError.shapeMismatch("x_range must be two floats") }
        let r = given.array(of: Float.self)
        return (r[0], r[1])
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try inputs.required(0, "X")
        let k = weights.k, n = weights.n
        let quantized = x.dtype == .uint8
        guard x.dtype == .float || quantized, x.rank >= 1, x.shape[x.rank - 1] == k else {
            throw KerfError.shapeMismatch("X of shape \(x.shape) (\(x.dtype)) does not fit W [\(k), \(n)]")
        }
        probe?.countFusedQuantizedRun()
        let rows = x.count / max(k, 1)
        var productShape = x.shape
        productShape[x.rank - 1] = n
        let heads = self.heads?.layout(inputs, productShape: productShape)
        let residual = try tail?.residual(inputs, productShape: productShape)
        let y = try Tensor(uninitialized: .float, shape: heads?.1 ?? productShape)
        let scratch = ScratchPool.shared.take()
        defer { ScratchPool.shared.give(scratch) }
        let blockRows = int8GemmBlockRows(m: rows, n: n, k: k)
        let blocks = reportsRange ? (rows + blockRows - 1) / blockRows : 0
        // Scratch: the n column scales, each block's output range, then (float X) X as uint8.
        scratch.reserve((n + 2 * blocks) * 4 + (quantized ? 0 : x.count))
        let scales = scratch.pointer!.bindMemory(to: Float.self, capacity: n + 2 * blocks)
        let ranges = scales + n  // [low, high] per block
        ranges.initialize(repeating: 0, count: 2 * blocks)  // (blocks that never run, N = 0, stay at 0)
        let buffer = quantized ? nil : (scratch.pointer! + (n + 2 * blocks) * 4).bindMemory(to: UInt8.self, capacity: x.count)
        let scale: Float, zero: UInt8
        if let buffer {
            let xp = x.storage.pointer.assumingMemoryBound(to: Float.self)
            let r = try range(of: x, inputs)
            (scale, zero) = dynamicQuantizationParameters(low: r.low, high: r.high)
            quantize(xp, count: x.count, scale: scale, zeroPoint: Int32(zero), lo: 0, hi: 255, into: buffer)
        } else {
            guard let quantizedX else { throw KerfError.invalidArgument("missing required input x_scale") }
            let s = try inputs.required(quantizedX.scale, "x_scale"), z = try inputs.required(quantizedX.zero, "x_zero_point")
            guard s.dtype == .float, s.count == 1, z.dtype == .uint8, z.count == 1 else {
                throw KerfError.shapeMismatch("x_scale and x_zero_point must be one float and one uint8")
            }
            (scale, zero) = (s.array(of: Float.self)[0], z.array(of: UInt8.self)[0])
        }
        let xq = buffer.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(x.storage.pointer)
        // As the graph computes it: Mul(x_scale, w_scale), then Mul(Cast(acc), that) [+ bias].
        weightScales.withUnsafeBufferPointer { w in
            for j in 0..<n { scales[j] = scale * w[w.count == n ? j : 0] }
        }
        let out = y.storage.pointer.assumingMemoryBound(to: Float.self)
        do {
            let s = UnsafeBufferPointer(start: scales, count: n)
            withOptionalBuffer(bias) { bias in
                do {
                    int8GemmByRowBlocks(m: rows, a: xq, aSigned: false, lda: k, aZeroPoint: Int32(zero), b: weights, threads: threads) { acc, offsets, first, count, scratch in
                        let block = heads == nil ? out + first * n : scratch
                        dequantizeProduct(acc, m: count, n: n, ldAcc: n, offsets: offsets, scales: s, bias: bias, into: block, rowStride: n, columnStride: 1)
                        activation.apply(block, count: count * n)
                        if let residual {  // (no head layout with a tail: scratch is free)
                            tail!.apply(block, first: first, count: count, n: n, residual: residual.storage.pointer.assumingMemoryBound(to: Float.self),
                                        scratch: scratch)
                        }
                        if reportsRange {  // each block's range while it is in cache, for the output's range
                            let r = valueRange(block, count: count * n)
                            (ranges[2 * (first / blockRows)], ranges[2 * (first / blockRows) + 1]) = (r.low, r.high)
                        }
                        heads?.0.place(block, first: first, count: count, into: out)
                    }
                }
            }
        }
        if let tail, residual == nil { return [try tail.applyUnfused(y, inputs)] }
        if heads == nil, let fallback = self.heads { return [try fallback.applyUnfused(y, inputs)] }
        guard reportsRange else { return [y] }
        var low: Float = 0, high: Float = 0
        for b in 0..<blocks {
            if ranges[2 * b] < low { low = ranges[2 * b] }
            if ranges[2 * b + 1] > high { high = ranges[2 * b + 1] }
        }
        return [y, Tensor(shape: [2], values: [low, high])]
    }
}

/// kerf.QuantizedMatMul and kerf.QuantizedConv (see the file comment); as kerf.NhwcQuantizedConv
/// (`channelsLast`), X [N, H, W, C] and Y [N, OH, OW, M] are channels-last 2-D images.
final class QuantizedProduct: Operator {
    /// Counts this operator's runs in tests (nil otherwise).
    private let probe: RuntimeProbe?
    let conv: Bool
    let channelsLast: Bool
    let window: WindowAttributes?
    let group: Int
    /// One packed weight per group ([K, N] for MatMul; [k... x C/group, M/group] for Conv).
    let weights: [PackedInt8Weights]
    let kernel: [Int]
    let xScale: Float, xZero: Int32, xType: DType
    let epilogue: ProductEpilogue
    let threads: Int

    init(_ c: OperatorContext, conv: Bool, channelsLast: Bool = false) throws {
        probe = c.options.probe
        guard let p = try QuantizedProductNode(c.node), p.kind.isConv == conv, let xq = p.xQuantization else {
            throw KerfError.invalidModel("\(c.node.label) is not a static quantized product")
        }
        self.conv = conv
        self.channelsLast = channelsLast
        threads = c.options.resolvedThreads
        let xScale = try floatScalars(try c.requiredConstant(named: xq.scale, "x scale"))[0]
        self.xScale = xScale
        let xZeroTensor = try c.requiredConstant(named: xq.zero, "x zero point")
        xZero = try integerValues(xZeroTensor)[0]
        xType = xZeroTensor.dtype
        let w = try c.requiredConstant(named: p.weight, "W")
        guard w.dtype == .int8 else { throw KerfError.invalidModel("\(c.node.label): W must be int8") }
        let wScales = try floatScalars(try c.requiredConstant(named: p.weightScale, "w scale"))
        // A QDQ product means exactly what its float DequantizeLinear -> op -> QuantizeLinear
        // compute (ONNX Runtime's fused QLinearConv / QLinearMatMul / QGemm depart from that
        // without VNNI: their u8s8 pair sums saturate).
        let layout = int8Layout(activation: .uint8, weight: .int8)
        if conv {
            window = try WindowAttributes(c)
            group = try c.int("group", default: 1)
            guard w.rank >= 3, group >= 1, w.shape[0] % group == 0 else { throw KerfError.invalidModel("\(c.node.label): bad W \(w.shape)") }
            kernel = Array(w.shape[2...])
            let mg = w.shape[0] / group, cg = w.shape[1], kc = kernel.reduce(1, *)
            // Per group: B[(tap, channel), j] = W[g * mg + j, channel, tap] (im2row's tap order).
            let values = w.array(of: Int8.self)
            weights = (0..<group).map { g in
                var b = [Int8](repeating: 0, count: kc * cg * mg)
                for j in 0..<mg {
                    for ch in 0..<cg { for t in 0..<kc { b[(t * cg + ch) * mg + j] = values[((g * mg + j) * cg + ch) * kc + t] } }
                }
                return b.withUnsafeBufferPointer {
                    PackedInt8Weights($0.baseAddress!, k: kc * cg, n: mg, rowStride: mg, columnStride: 1, zeroPoints: [0], layout: layout)
                }
            }
        } else {
            window = nil
            group = 1
            kernel = []
            guard w.rank == 2 else { throw KerfError.invalidModel("\(c.node.label): W must be 2-D") }
            let transB = p.transB
            let (k, n) = transB ? (w.shape[1], w.shape[0]) : (w.shape[0], w.shape[1])
            weights = [packWeights(w, offset: 0, k: k, n: n, zeroPoints: [0], layout: layout, transposed: transB)]
        }
        epilogue = try ProductEpilogue(p.epilogue, c, conv: conv, xScale: xScale, xZero: xZero, xType: xType, wScales: wScales, weights: weights)
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let x = try inputs.required(0, "x")
        guard x.dtype == xType else { throw KerfError.shapeMismatch("x is \(x.dtype), expected \(xType)") }
        probe?.countFusedQuantizedRun()
        return [conv ? try runConv(x) : try runMatMul(x, inputs)]
    }

    private func runMatMul(_ x: Tensor, _ inputs: [Tensor?]) throws -> Tensor {
        let b = weights[0]
        guard x.rank >= 1, x.shape[x.rank - 1] == b.k else { throw KerfError.shapeMismatch("x \(x.shape) does not fit W [\(b.k), \(b.n)]") }
        let rows = x.count / max(b.k, 1), n = b.n
        let e = epilogue, dtype = e.outputType
        var productShape = x.shape
        productShape[x.rank - 1] = n
        if productShape.count < e.biasRank {  // Add's broadcast with a float bias [1, ..., N]
            productShape = [Int](repeating: 1, count: e.biasRank - productShape.count) + productShape
        }
        if let table = e.table {
            try table.check(productShape)
            productShape = table.outputShape(productShape)
        }
        let heads = dtype == .float ? e.heads?.layout(inputs, productShape: productShape) : nil
        let residual = dtype == .float ? try e.tail?.residual(inputs, productShape: productShape) : nil
        let y = try Tensor(uninitialized: dtype, shape: heads?.1 ?? productShape)
        let yp = y.storage.pointer, element = dtype.byteSize
        withOptionalBuffer(e.columnOffsets) { known in
        int8GemmByRowBlocks(m: rows, a: x.storage.pointer, aSigned: xType == .int8, lda: b.k, aZeroPoint: xZero, b: b,
                            threads: threads, columnOffsets: known?.baseAddress) { acc, offsets, first, count, scratch in
            let block = yp + first * n * element
            if let heads {
                e.writeSums(acc, offsets: offsets, m: count, n: n, columnOffset: 0, into: UnsafeMutableRawPointer(scratch), rowStride: n, columnStride: 1)
                heads.0.place(scratch, first: first, count: count, into: yp.assumingMemoryBound(to: Float.self))
                return
            }
            guard let q = e.floatQuantization else {
                e.writeSums(acc, offsets: offsets, m: count, n: n, columnOffset: 0, into: block, rowStride: n, columnStride: 1)
                e.table?.apply(block, count: count * n, into: block)
                if let residual {
                    e.tail!.apply(block.assumingMemoryBound(to: Float.self), first: first, count: count, n: n,
                                  residual: residual.storage.pointer.assumingMemoryBound(to: Float.self), scratch: scratch)
                }
                return
            }
            e.writeSums(acc, offsets: offsets, m: count, n: n, columnOffset: 0, into: UnsafeMutableRawPointer(scratch), rowStride: n, columnStride: 1)
            e.quantizeFloat(q, scratch, count: count * n, into: block)
        }
        }
        if let tail = e.tail, residual == nil { return try tail.applyUnfused(y, inputs) }
        if heads == nil, let fallback = e.heads { return try fallback.applyUnfused(y, inputs) }
        return y
    }

    private func runConv(_ x: Tensor) throws -> Tensor {
        guard let window, x.rank == kernel.count + 2 else { throw KerfError.shapeMismatch("Conv x \(x.shape) does not fit kernel \(kernel)") }
        let batch = x.shape[0], channels = x.shape[channelsLast ? x.rank - 1 : 1], cg = channels / group, mg = weights[0].n, m = mg * group
        guard channels % group == 0, weights[0].k == cg * kernel.reduce(1, *) else {
            throw KerfError.shapeMismatch("Conv x \(x.shape)\(channelsLast ? " (channels-last)" : "") does not fit W with group \(group)")
        }
        let spatial = channelsLast ? Array(x.shape[1..<(x.rank - 1)]) : Array(x.shape[2...])
        let (g, _) = try window.geometry(input: spatial, kernel: kernel)
        let shape = channelsLast ? [batch] + g.outputSize + [m] : [batch, m] + g.outputSize
        let e = epilogue, dtype = e.outputType
        try checkedElementCount(shape, dtype: dtype, "Conv")
        let y = try Tensor(uninitialized: dtype, shape: shape)
        let oc = g.outputCount, ic = g.inputCount, width = weights[0].k
        if oc == 0 || batch == 0 { return y }
        // The batch channels-last: as given, or made so once (int8 and uint8 alike: only bytes move).
        let xp = x.storage.pointer.assumingMemoryBound(to: UInt8.self)
        let copy = channelsLast ? nil : UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, x.count))
        defer { copy?.deallocate() }
        if let copy {
            for n in 0..<batch { transposeToChannelsLast(xp + n * channels * ic, channels: channels, pixels: ic, into: copy + n * channels * ic) }
        }
        let nhwc = copy ?? xp
        // A 1x1, stride-1, unpadded Conv multiplies the channels-last image itself.
        let pointwise = g.kernelCount == 1 && g.strides.allSatisfy { $0 == 1 } && g.padsBegin.allSatisfy { $0 == 0 } && oc == ic
        let (tilesPerImage, workers) = convTiling(batch: batch, pixels: oc, macsPerImage: oc * width * m)
        let tileRows = (oc + tilesPerImage - 1) / tilesPerImage
        let accWidth = mg
        // A tile runs in blocks of rows whose sums (and float results) stay in L2.
        let blockRows = min(tileRows, max(32, 16384 / accWidth))
        let rowsBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: pointwise ? 1 : workers * blockRows * width)
        let accBuffer = UnsafeMutablePointer<Int32>.allocate(capacity: workers * blockRows * accWidth)
        // The float results of a block, when they are quantized after the activation.
        let floatBuffer = UnsafeMutablePointer<Float>.allocate(capacity: e.floatQuantization == nil ? 1 : workers * blockRows * accWidth)
        let element = dtype.byteSize, yp = y.storage.pointer
        // Those results quantized (int8 or uint8), before they are written into NCHW planes.
        let stagedBuffer = UnsafeMutableRawPointer.allocate(byteCount: e.floatQuantization == nil || channelsLast ? 1 : workers * blockRows * accWidth,
                                                            alignment: 64)
        defer { rowsBuffer.deallocate(); accBuffer.deallocate(); floatBuffer.deallocate(); stagedBuffer.deallocate() }
        let gemmThreads = batch * tilesPerImage == 1 ? threads : 1
        let padding = UInt8(truncatingIfNeeded: xZero), signed = xType == .int8
        /// Writes sums acc [count, n] of output channels `column ..< column + n` for positions
        /// `first ..< first + count` of image `n`; y is NCHW (pixel stride 1, channel stride oc) or NHWC.
        func write(_ acc: UnsafeMutablePointer<Int32>, offsets: UnsafePointer<Int32>?, image: Int, first: Int, count: Int, column: Int, n: Int,
                   worker: Int) {
            if let q = e.floatQuantization {
                let block = floatBuffer + worker * blockRows * accWidth
                e.writeSums(acc, offsets: offsets, m: count, n: n, columnOffset: column, into: block, rowStride: n, columnStride: 1)
                if channelsLast {
                    let dst = yp + ((image * oc + first) * m + column) * element
                    if n == m {
                        e.quantizeFloat(q, block, count: count * n, into: dst)
                    } else {
                        for i in 0..<count { e.quantizeFloat(q, block + i * n, count: n, into: dst + i * m * element) }
                    }
                } else {
                    // Quantized channels-last (one byte each), then turned into the NCHW planes.
                    let staged = stagedBuffer + worker * blockRows * accWidth
                    e.quantizeFloat(q, block, count: count * n, into: staged)
                    let dst = yp + (image * m + column) * oc + first
                    kerf_transpose_u8(staged.assumingMemoryBound(to: UInt8.self), count, n, n, dst.assumingMemoryBound(to: UInt8.self), oc)
                }
                return
            }
            if channelsLast {
                let dst = yp + ((image * oc + first) * m + column) * element
                e.writeSums(acc, offsets: offsets, m: count, n: n, columnOffset: column, into: dst, rowStride: m, columnStride: 1)
            } else {
                let dst = yp + ((image * m + column) * oc + first) * element
                e.writeSums(acc, offsets: offsets, m: count, n: n, columnOffset: column, into: dst, rowStride: 1, columnStride: oc)
            }
        }
        withOptionalBuffer(e.columnOffsets) { offsetBuffer in
        let offsets = offsetBuffer?.baseAddress
        parallelFor(batch * tilesPerImage, threads: workers) { worker, task in
            let n = task / tilesPerImage, tileFirst = task % tilesPerImage * tileRows, tileEnd = min(tileFirst + tileRows, oc)
            let image = nhwc + n * channels * ic
            let rows = rowsBuffer + worker * blockRows * width, acc = accBuffer + worker * blockRows * accWidth
            for first in stride(from: tileFirst, to: tileEnd, by: blockRows) {
            let count = min(blockRows, tileEnd - first)
            for gi in 0..<group {
                let a: UnsafeRawPointer, lda: Int
                if pointwise {
                    (a, lda) = (UnsafeRawPointer(image + first * channels + gi * cg), channels)
                } else {
                    im2rowChannelsLast(UnsafePointer(image + gi * cg), pixelStride: channels, channels: cg, geometry: g,
                                       padding: padding, first: first, count: count, rows: rows)
                    (a, lda) = (UnsafeRawPointer(rows), width)
                }
                int8Gemm(m: count, a: a, aSigned: signed, lda: lda, aZeroPoint: xZero, b: weights[gi], c: acc, ldc: mg,
                         threads: gemmThreads, correctingZeroPoints: offsets == nil)
                // acc is [pixels, channels].
                write(acc, offsets: offsets.map { $0 + gi * mg }, image: n, first: first, count: count, column: gi * mg, n: mg, worker: worker)
            }
            }
        }
        }
        return y
    }

    /// How a Conv's images split into tasks: whole images when the batch can keep every thread
    /// busy, else up to `threads` tiles of output pixels per image. Small convolutions stay on one
    /// thread: waking a pool thread on a busy machine costs about as much as 500k multiply-adds
    /// (measured on the small ResNet of scripts/bench_int8.py at batch 1).
    private func convTiling(batch: Int, pixels: Int, macsPerImage: Int) -> (tilesPerImage: Int, workers: Int) {
        let minimumMACsPerTask = 500_000
        if threads <= 1 || batch * macsPerImage < 2 * minimumMACsPerTask { return (1, 1) }
        if batch >= threads { return (1, threads) }
        let tiles = max(1, min((threads + batch - 1) / batch, pixels / 16, macsPerImage / minimumMACsPerTask))
        return (tiles, min(threads, batch * tiles))
    }
}
