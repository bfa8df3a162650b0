import KerfCore
import KerfKernels

/// The gradients of Conv (attributes as the forward node's: kernel_shape, strides, pads,
/// dilations, auto_pad, group):
/// - `ConvGradInput(dY, W, shape of X) -> dX`;
/// - `ConvGradWeight(dY, X, shape of W) -> dW [, dB]` (dB[M], the sum of dY over all axes but
///   1, when the node has a second output).
/// Float runs on oneDNN's backward primitives where oneDNN has a kernel for the shape (prepared
/// once per shape), else, like double, by im2col / col2im and GEMM.
final class ConvGradOperator: Operator {
    enum Target { case input, weight }
    let target: Target
    let window: WindowAttributes
    let group: Int
    let withBias: Bool
    private let threads: Int
    /// oneDNN's backward primitive for the last (dY, other operand) shapes, nil when it has none.
    private var cached: (key: [[Int]], backward: OneDnnConvolutionBackward?)?

    init(_ c: OperatorContext, target: Target) throws {
        self.target = target
        window = try WindowAttributes(c)
        group = try c.int("group", default: 1)
        guard group >= 1 else { throw KerfError.invalidModel("Conv group must be >= 1") }
        withBias = target == .weight && c.node.outputs.count > 1 && !c.node.outputs[1].isEmpty
        threads = c.options.resolvedThreads
    }

    var name: String { target == .input ? "ConvGradInput" : "ConvGradWeight" }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let dY = try inputs.required(0, "dY"), other = try inputs.required(1, target == .input ? "W" : "X")
        let shape = try intValues(try inputs.required(2, "shape"), "\(name) shape")
        try requireGradientElement(dY, name)
        guard other.dtype == dY.dtype else {
            throw KerfError.shapeMismatch("\(name): dY is \(dY.dtype) but \(target == .input ? "W" : "X") is \(other.dtype)")
        }
        let s = target == .input ? try convolutionShape(x: shape, w: other.shape, window: window, group: group, name)
                                 : try convolutionShape(x: other.shape, w: shape, window: window, group: group, name)
        let expected = [s.batch, s.outChannels] + s.geometry.outputSize
        guard dY.shape == expected else {
            throw KerfError.shapeMismatch("\(name): dY \(dY.shape) is not the convolution's output shape \(expected)")
        }
        try checkedElementCount(shape, dtype: dY.dtype, name)
        if dY.count == 0 || shape.contains(0) {
            // Nothing to convolve: dX or dW is zeros, dB still sums dY.
            let zeros = try Tensor(zeros: dY.dtype, shape: shape)
            guard withBias else { return [zeros] }
            return [zeros, try sumToShape(dY, shape: [s.outChannels] + [Int](repeating: 1, count: dY.rank - 2)).reshaped([s.outChannels])]
        }
        let result = try Tensor(uninitialized: dY.dtype, shape: shape)
        let bias = withBias ? try Tensor(uninitialized: dY.dtype, shape: [s.outChannels]) : nil

        let dy = UnsafeRawPointer(dY.storage.pointer), o = UnsafeRawPointer(other.storage.pointer)
        let out = result.storage.pointer, db = bias?.storage.pointer
        if dY.dtype == .float, let backward = oneDnn(dY.shape, other.shape, s) {
            let f = { (p: UnsafeRawPointer) in p.assumingMemoryBound(to: Float.self) }
            let done = target == .input
                ? backward.backwardData(f(dy), f(o), out.assumingMemoryBound(to: Float.self))
                : backward.backwardWeights(f(dy), f(o), out.assumingMemoryBound(to: Float.self), db?.assumingMemoryBound(to: Float.self))
            if done { return [result] + (bias.map { [$0] } ?? []) }
        }
        try reference(dy, o, out, db, s, dY.dtype)
        return [result] + (bias.map { [$0] } ?? [])
    }

    /// oneDNN's primitive for these shapes (made at the first run with them).
    private func oneDnn(_ dYShape: [Int], _ otherShape: [Int], _ s: ConvolutionShape) -> OneDnnConvolutionBackward? {
        let key = [dYShape, otherShape, s.geometry.inputSize]
        if let cached, cached.key == key { return cached.backward }
        cached = nil  // free the previous shape's primitive first
        let backward = OneDnnConvolutionBackward(target == .input ? .data : .weights(bias: withBias), shape: s)
        cached = (key, backward)
        return backward
    }

    /// The im2col / col2im path, images in parallel for dX, one thread for dW.
    private func reference(_ dy: UnsafeRawPointer, _ other: UnsafeRawPointer, _ out: UnsafeMutableRawPointer,
                           _ db: UnsafeMutableRawPointer?, _ s: ConvolutionShape, _ dtype: DType) throws {
        let workers = target == .input ? max(1, min(threads, s.batch)) : 1
        try withColumnScratch(workers: workers, bytes: s.columnBytes(elementSize: dtype.byteSize), for: name) { pointers in
            switch (dtype, target) {
            case (.double, .input):
                convolutionBackwardDataReference(dy.assumingMemoryBound(to: Double.self), other.assumingMemoryBound(to: Double.self),
                                                 out.assumingMemoryBound(to: Double.self), shape: s, scratch: pointers)
            case (.double, .weight):
                convolutionBackwardWeightsReference(dy.assumingMemoryBound(to: Double.self), other.assumingMemoryBound(to: Double.self),
                                                    out.assumingMemoryBound(to: Double.self), db?.assumingMemoryBound(to: Double.self),
                                                    shape: s, scratch: pointers[0])
            case (_, .input):
                convolutionBackwardDataReference(dy.assumingMemoryBound(to: Float.self), other.assumingMemoryBound(to: Float.self),
                                                 out.assumingMemoryBound(to: Float.self), shape: s, scratch: pointers)
            case (_, .weight):
                convolutionBackwardWeightsReference(dy.assumingMemoryBound(to: Float.self), other.assumingMemoryBound(to: Float.self),
                                                    out.assumingMemoryBound(to: Float.self), db?.assumingMemoryBound(to: Float.self),
                                                    shape: s, scratch: pointers[0])
            }
        }
    }
}

/// The sizes of Conv(X of `x`, W of `w`) with `window` and `group`, after the checks the
/// forward op makes: ranks, channels per group, kernel_shape against W, a valid window.
func convolutionShape(x: [Int], w: [Int], window: WindowAttributes, group: Int, _ op: String) throws -> ConvolutionShape {
    guard x.count >= 3, w.count == x.count else {
        throw KerfError.shapeMismatch("\(op): X \(x) and W \(w) ranks do not fit a convolution")
    }
    guard x.allSatisfy({ $0 >= 0 }), w.allSatisfy({ $0 >= 0 }) else { throw KerfError.shapeMismatch("\(op): negative dims in X \(x) or W \(w)") }
    let channels = x[1], m = w[0]
    guard channels % group == 0, m % group == 0, w[1] == channels / group else {
        throw KerfError.shapeMismatch("\(op): W \(w) does not fit X \(x) with group \(group)")
    }
    let kernel = Array(w[2...])
    if let ks = window.kernelShape, ks != kernel { throw KerfError.shapeMismatch("\(op): kernel_shape \(ks) differs from W \(w)") }
    let (g, _) = try window.geometry(input: Array(x[2...]), kernel: kernel)
    return ConvolutionShape(batch: x[0], channels: channels, outChannels: m, group: group, geometry: g)
}

/// Conv of double tensors (no fused activation or residual): im2col and GEMM, images in
/// parallel on up to `threads` threads.
func doubleConvolution(_ x: Tensor, _ w: Tensor, _ b: Tensor?, window: WindowAttributes, group: Int, threads: Int) throws -> Tensor {
    guard w.dtype == .double, b == nil || b!.dtype == .double else {
        throw KerfError.unsupported("Conv of double X with \(w.dtype) W\(b.map { " and \($0.dtype) B" } ?? "")")
    }
    let s = try convolutionShape(x: x.shape, w: w.shape, window: window, group: group, "Conv")
    if let b, b.count != s.outChannels { throw KerfError.shapeMismatch("Conv B has \(b.count) elements, expected \(s.outChannels)") }
    let shape = [s.batch, s.outChannels] + s.geometry.outputSize
    try checkedElementCount(shape, dtype: .double, "Conv")
    let y = try Tensor(zeros: .double, shape: shape)
    if y.count == 0 { return y }
    try withColumnScratch(workers: max(1, min(threads, s.batch)), bytes: s.columnBytes(elementSize: 8), for: "Conv") { pointers in
        convolutionReference(x.storage.pointer.assumingMemoryBound(to: Double.self), w.storage.pointer.assumingMemoryBound(to: Double.self),
                             bias: b.map { UnsafePointer($0.storage.pointer.assumingMemoryBound(to: Double.self)) },
                             y.storage.pointer.assumingMemoryBound(to: Double.self), shape: s, scratch: pointers)
    }
    return y
}

/// Runs `body` with `workers` im2col / col2im column buffers of `bytes` each from the shared
/// scratch pool, their total checked against the allocation limit first (`op` names them in
/// the refusal: the pool's buffers cannot report a failed allocation).
func withColumnScratch(workers: Int, bytes: Int, for op: String, _ body: ([UnsafeMutableRawPointer?]) -> Void) throws {
    let (total, overflow) = bytes.multipliedReportingOverflow(by: workers)
    try MemoryLimit.check(byteCount: overflow ? -1 : total, for: "\(op) im2col columns of \(bytes) bytes x \(workers)")
    let scratch = ScratchPool.shared.take(workers)
    defer { ScratchPool.shared.give(scratch) }
    for buffer in scratch { buffer.reserve(max(64, bytes)) }
    body(scratch.map(\.pointer))
}
