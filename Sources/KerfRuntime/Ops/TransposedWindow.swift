import KerfCore
import KerfKernels

/// The window attributes of ConvTranspose, parsed once per node, and the geometry they give
/// for one input.
///
/// Per spatial axis i, with input size n, dilated kernel span e = (k - 1) · d + 1 and
/// adj = output_padding[i], the full (unpadded) output has s · (n - 1) + adj + e elements, and
/// (ONNX's ConvTranspose):
/// - `output_shape` given: that size; total padding = full - size, split as below (pads ignored);
/// - else `auto_pad` SAME_UPPER / SAME_LOWER: size n · s, total padding split as below;
/// - else `auto_pad` VALID: no padding; NOTSET: `pads` (default zeros).
/// A total padding t splits as begin = t/2, end = t - t/2 for SAME_UPPER, the other way round
/// otherwise, divisions rounding down: a negative t (an output larger than the full one) puts
/// its zeros at the end for NOTSET, as ONNX's reference and the backend test cases do.
struct TransposedWindow {
    /// kernel_shape, strides, dilations, pads and auto_pad, as Conv has them.
    var window: WindowAttributes
    var outputPadding: [Int]?
    var outputShape: [Int]?

    init(_ c: OperatorContext) throws {
        window = try WindowAttributes(c)
        outputPadding = try c.ints("output_padding")
        outputShape = try c.ints("output_shape")
    }

    private var kernelShape: [Int]? { window.kernelShape }
    private var strides: [Int]? { window.strides }
    private var dilations: [Int]? { window.dilations }
    private var pads: [Int]? { window.pads }
    private var autoPad: String { window.autoPad }

    /// The transposed convolution of an input of spatial size `input` by `kernel`, seen as the
    /// convolution it transposes: the returned geometry's `inputSize` is the ConvTranspose
    /// output's spatial size, its `outputSize` is `input`, and `padsBegin` may be negative
    /// (an output that extends before the full one). Sizes are checked for overflow and for an
    /// output of at least one element per axis.
    func geometry(input: [Int], kernel: [Int]) throws -> WindowGeometry {
        let n = input.count
        let s = strides ?? Array(repeating: 1, count: n)
        let d = dilations ?? Array(repeating: 1, count: n)
        let adj = outputPadding ?? Array(repeating: 0, count: n)
        guard kernel.count == n, s.count == n, d.count == n, adj.count == n else {
            throw KerfError.invalidModel("ConvTranspose: kernel \(kernel), strides \(s), dilations \(d) or output_padding \(adj) "
                                         + "do not fit \(n) spatial dims")
        }
        if let ks = kernelShape, ks != kernel { throw KerfError.shapeMismatch("ConvTranspose: kernel_shape \(ks) differs from W's \(kernel)") }
        guard s.allSatisfy({ $0 > 0 }), d.allSatisfy({ $0 > 0 }), kernel.allSatisfy({ $0 > 0 }) else {
            throw KerfError.invalidModel("ConvTranspose: kernel \(kernel), strides \(s) and dilations \(d) must be positive")
        }
        for i in 0..<n where adj[i] < 0 || adj[i] >= Swift.max(s[i], d[i]) {
            throw KerfError.invalidModel("ConvTranspose: output_padding \(adj) must be >= 0 and below the stride or dilation of its axis")
        }
        let explicit = try explicitOutput(spatial: n)
        let explicitPads = try padsAttribute(spatial: n)
        guard input.allSatisfy({ $0 > 0 }) else { throw KerfError.shapeMismatch("ConvTranspose: empty spatial input \(input)") }

        func checked(_ r: (partialValue: Int, overflow: Bool)) throws -> Int {
            try windowSize(r, "ConvTranspose: input \(input), kernel \(kernel), strides \(s), dilations \(d) and pads \(pads ?? [])")
        }
        var begin = [Int](repeating: 0, count: n), out = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let span = try checked(try checked((kernel[i] - 1).multipliedReportingOverflow(by: d[i])).addingReportingOverflow(1))
            let strided = try checked((input[i] - 1).multipliedReportingOverflow(by: s[i]))
            let full = try checked(try checked(strided.addingReportingOverflow(adj[i])).addingReportingOverflow(span))
            let size: Int
            if let explicit {
                size = explicit[i]
            } else if autoPad.hasPrefix("SAME") {
                size = try checked(input[i].multipliedReportingOverflow(by: s[i]))
            } else {
                let (b, e) = explicitPads.map { ($0[i], $0[i + n]) } ?? (0, 0)
                size = try checked(try checked(full.subtractingReportingOverflow(b)).subtractingReportingOverflow(e))
                begin[i] = b
            }
            if explicit != nil || autoPad.hasPrefix("SAME") {
                let total = full - size  // both within [0, Int.max): no overflow
                let half = total >= 0 ? total / 2 : -((-total + 1) / 2)  // rounding down
                begin[i] = autoPad == "SAME_UPPER" ? half : total - half
            }
            guard size > 0 else {
                throw KerfError.shapeMismatch("ConvTranspose: output size \(size) along spatial axis \(i) for input \(input), "
                                              + "kernel \(kernel), strides \(s), pads \(pads ?? [])")
            }
            out[i] = size
        }
        try checkedElementCount(out, dtype: .float, "ConvTranspose")
        return WindowGeometry(inputSize: out, kernel: kernel, strides: s, dilations: d, padsBegin: begin, outputSize: input)
    }

    /// `output_shape`'s spatial sizes (it may also be given with the batch and channel dims).
    private func explicitOutput(spatial n: Int) throws -> [Int]? {
        guard let shape = outputShape else { return nil }
        guard shape.count == n || shape.count == n + 2, shape.allSatisfy({ $0 > 0 }) else {
            throw KerfError.invalidModel("ConvTranspose: output_shape \(shape) does not give \(n) positive spatial sizes")
        }
        return Array(shape.suffix(n))
    }

    /// `pads` when they apply (NOTSET), checked; nil for none.
    private func padsAttribute(spatial n: Int) throws -> [Int]? {
        guard autoPad == "NOTSET", let p = pads else { return nil }
        guard p.count == 2 * n, p.allSatisfy({ $0 >= 0 }) else { throw KerfError.invalidModel("ConvTranspose: pads \(p) do not fit \(n) spatial dims") }
        return p
    }
}
