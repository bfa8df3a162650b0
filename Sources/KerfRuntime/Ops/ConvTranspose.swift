import KerfCore
import KerfKernels

// ConvTranspose: the gradient of a convolution with respect to its input, run forward.
// Y[N, M, out...] = convT(X[N, C, in...], W[C, M/group, k...]) + B[M], 1 to N spatial dims.
// It runs on oneDNN's backward-data primitive where oneDNN has a kernel for the shape, else as
// a GEMM per image and group (columns = Wgᵀ · Xg) whose columns are folded onto the image
// (col2im); float16/bfloat16 compute in float32, double by the same GEMM + col2im path.

enum ConvTransposeOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["ConvTranspose"] = { c in try ConvTransposeOperator(c) }
    }
}

/// One ConvTranspose node: attributes parsed at session creation, oneDNN's primitive made at the
/// first run of each input shape (each operator serves one run at a time: its plan step's lock).
final class ConvTransposeOperator: Operator {
    let window: TransposedWindow
    let group: Int
    private let threads: Int
    /// oneDNN's backward-data primitive for the last (X, W) shapes, nil when it has none.
    private var cached: (key: [[Int]], backward: OneDnnConvolutionBackward?)?

    init(_ c: OperatorContext) throws {
        window = try TransposedWindow(c)
        group = try c.int("group", default: 1)
        guard group >= 1 else { throw KerfError.invalidModel("ConvTranspose group must be >= 1, got \(group)") }
        threads = c.options.resolvedThreads
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        try withFloat32(inputs) { ins in
            let x = try ins.required(0, "X"), w = try ins.required(1, "W"), b = ins.optional(2) ?? nil
            guard x.dtype == .float || x.dtype == .double, w.dtype == x.dtype, b == nil || b!.dtype == x.dtype else {
                throw KerfError.unsupported("ConvTranspose supports float types with X, W and B of one type, got X \(x.dtype), "
                                            + "W \(w.dtype)\(b.map { ", B \($0.dtype)" } ?? "")")
            }
            let s = try convolutionShape(x, w)
            if let b, b.rank != 1 || b.count != s.channels {
                throw KerfError.shapeMismatch("ConvTranspose B \(b.shape) must be a vector of \(s.channels) output channels")
            }
            let shape = [s.batch, s.channels] + s.geometry.inputSize
            // No input channels (or no batch): nothing reaches Y but the bias.
            let y = x.count == 0 ? try Tensor(zeros: x.dtype, shape: shape) : try Tensor(uninitialized: x.dtype, shape: shape)
            if y.count == 0 { return [y] }
            if x.count > 0 { try transposedConvolution(x, w, into: y, s) }
            if let b { addBias(b, to: y, channels: s.channels, planeSize: s.geometry.inputCount) }
            return [y]
        }
    }

    /// The convolution this ConvTranspose transposes: its input is Y (channels M = W[1] · group),
    /// its output X (channels C = W[0]), its weights W as given.
    private func convolutionShape(_ x: Tensor, _ w: Tensor) throws -> ConvolutionShape {
        guard x.rank >= 3, w.rank == x.rank else {
            throw KerfError.shapeMismatch("ConvTranspose X \(x.shape) and W \(w.shape) must have one rank, at least 3")
        }
        let channels = x.shape[1]
        guard channels % group == 0, w.shape[0] == channels else {
            throw KerfError.shapeMismatch("ConvTranspose W \(w.shape) does not fit X \(x.shape) with group \(group): "
                                          + "W[0] must be X's \(channels) channels, a multiple of the group")
        }
        let (m, overflow) = w.shape[1].multipliedReportingOverflow(by: group)
        guard !overflow else { throw KerfError.shapeMismatch("ConvTranspose W \(w.shape) times group \(group) overflows") }
        let g = try window.geometry(input: Array(x.shape[2...]), kernel: Array(w.shape[2...]))
        try checkedElementCount([x.shape[0], m] + g.inputSize, dtype: x.dtype, "ConvTranspose")
        return ConvolutionShape(batch: x.shape[0], channels: m, outChannels: channels, group: group, geometry: g)
    }

    /// y = convT(x, w) (y overwritten), by oneDNN when it has a kernel, else GEMM + col2im.
    private func transposedConvolution(_ x: Tensor, _ w: Tensor, into y: Tensor, _ s: ConvolutionShape) throws {
        let xp = UnsafeRawPointer(x.storage.pointer), wp = UnsafeRawPointer(w.storage.pointer), yp = y.storage.pointer
        if x.dtype == .float, let backward = oneDnn(x.shape, w.shape, s),
           backward.backwardData(xp.assumingMemoryBound(to: Float.self), wp.assumingMemoryBound(to: Float.self),
                                 yp.assumingMemoryBound(to: Float.self)) {
            return
        }
        let workers = max(1, min(threads, s.batch))
        try withColumnScratch(workers: workers, bytes: s.columnBytes(elementSize: x.dtype.byteSize), for: "ConvTranspose") { pointers in
            if x.dtype == .double {
                convolutionBackwardDataReference(xp.assumingMemoryBound(to: Double.self), wp.assumingMemoryBound(to: Double.self),
                                                 yp.assumingMemoryBound(to: Double.self), shape: s, scratch: pointers)
            } else {
                convolutionBackwardDataReference(xp.assumingMemoryBound(to: Float.self), wp.assumingMemoryBound(to: Float.self),
                                                 yp.assumingMemoryBound(to: Float.self), shape: s, scratch: pointers)
            }
        }
    }

    /// oneDNN's primitive for these shapes (made at the first run with them); nil when the
    /// output starts before the full one (negative padding oneDNN does not take) or oneDNN has
    /// no fast kernel.
    private func oneDnn(_ xShape: [Int], _ wShape: [Int], _ s: ConvolutionShape) -> OneDnnConvolutionBackward? {
        let key = [xShape, wShape]
        if let cached, cached.key == key { return cached.backward }
        cached = nil  // free the previous shape's primitive first
        let backward = s.geometry.padsBegin.allSatisfy({ $0 >= 0 }) ? OneDnnConvolutionBackward(.data, shape: s) : nil
        cached = (key, backward)
        return backward
    }
}

/// y[N, C, plane] += b[C] for float or double y (b of y's dtype).
private func addBias(_ b: Tensor, to y: Tensor, channels: Int, planeSize: Int) {
    func add<T: BinaryFloatingPoint>(_: T.Type) {
        let bp = b.storage.pointer.assumingMemoryBound(to: T.self), yp = y.storage.pointer.assumingMemoryBound(to: T.self)
        for row in 0..<(y.count / planeSize) {
            let v = bp[row % channels], plane = yp + row * planeSize
            for i in 0..<planeSize { plane[i] += v }
        }
    }
    if y.dtype == .double { add(Double.self) } else { add(Float.self) }
}
