import KerfCore

/// Convolutions and pooling over N spatial dims: X [N, C, D1, ...] -> [N, C', O1, ...].
extension ShapeRules {
    static let convolution: [String: ShapeRule] = [
        "Conv": { c in convolutionRule(&c, weight: 1, dtype: c.dtype(0)) },
        "ConvInteger": { c in convolutionRule(&c, weight: 1, dtype: .int32) },
        "QLinearConv": { c in convolutionRule(&c, x: 0, weight: 3, dtype: c.dtype(7) ?? c.dtype(0)) },
        "ConvTranspose": convTranspose,
        "MaxPool": { c in
            pooling(&c)
            c.set(1, dtype: .int64, shape: c.outputs.first?.shape)
        },
        "AveragePool": { c in pooling(&c) },
        "LpPool": { c in pooling(&c) },
        "GlobalAveragePool": globalPooling,
        "GlobalMaxPool": globalPooling,
        "GlobalLpPool": globalPooling,
    ]

    /// The spatial attributes of a convolution or pooling over `spatial` dims, checked:
    /// kernel from `kernel_shape` (or `kernelFromWeight`), strides and dilations >= 1, pads >= 0.
    struct Window {
        var kernel: [Dim]
        var strides: [Int]
        var dilations: [Int]
        var pads: [Int]
        var autoPad: String
        var ceilMode: Bool

        init?(_ c: inout ShapeRuleContext, spatial: Int, kernelFromWeight: [Dim]?) {
            if let k = c.ints("kernel_shape") {
                kernel = k.map(Dim.value)
            } else if let k = kernelFromWeight {
                kernel = k
            } else {
                return nil
            }
            strides = c.ints("strides") ?? Array(repeating: 1, count: spatial)
            dilations = c.ints("dilations") ?? Array(repeating: 1, count: spatial)
            pads = c.ints("pads") ?? Array(repeating: 0, count: 2 * spatial)
            autoPad = c.string("auto_pad") ?? "NOTSET"
            ceilMode = c.int("ceil_mode", default: 0) != 0
            guard kernel.count == spatial, strides.count == spatial, dilations.count == spatial, pads.count == 2 * spatial,
                  strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }),
                  kernel.allSatisfy({ $0.intValue.map { $0 >= 1 } ?? true }) else {
                c.fail("kernel \(kernel), strides \(strides), dilations \(dilations), pads \(pads) do not fit \(spatial) spatial dims")
                return nil
            }
        }

        /// Output size of spatial dim `i` for input size `input` (ONNX's convolution and pooling
        /// formula; `ceilMode` rounds up, dropping a last window that would start in the padding).
        func output(_ i: Int, input: Dim) -> Dim {
            guard let n = input.intValue else {
                return .unknown
            }
            guard let k = kernel[i].intValue else { return .unknown }
            let s = strides[i]
            let (dk, o1) = dilations[i].multipliedReportingOverflow(by: k - 1)
            guard !o1, dk < Int.max / 2, n < Int.max / 4, pads[i] < Int.max / 4, pads[i + kernel.count] < Int.max / 4 else {
                return .unknown
            }
            let effectiveKernel = dk + 1
            switch autoPad {
            case "SAME_UPPER", "SAME_LOWER":
                return .value((n + s - 1) / s)
            case "VALID":
                let span = n - effectiveKernel
                return span < 0 ? .unknown : .value(span / s + 1)
            default:
                let padded = n + pads[i] + pads[i + kernel.count]
                let span = padded - effectiveKernel
                guard span >= 0 else { return .unknown }
                var out = (ceilMode ? (span + s - 1) / s : span / s) + 1
                if ceilMode, (out - 1) * s >= n + pads[i] { out -= 1 }
                return .value(out)
            }
        }
    }

    /// The `group` attribute of a convolution of `xs` by a weight of shape `ws`, or nil (with a
    /// diagnostic) when the weight's rank is not the input's or the group is below 1.
    static func convolutionGroup(_ c: inout ShapeRuleContext, input xs: [Dim], weight ws: [Dim]?) -> Int? {
        if let ws, ws.count != xs.count {
            c.fail("weight of rank \(ws.count) for an input of rank \(xs.count)")
            return nil
        }
        let group = c.int("group", default: 1)
        guard group >= 1 else {
            c.fail("group \(group)")
            return nil
        }
        return group
    }

    /// Conv: X [N, C, D...], W [M, C/group, K...] -> [N, M, O...].
    static func convolutionRule(_ c: inout ShapeRuleContext, x: Int = 0, weight: Int, dtype: DType?) {
        c.set(0, dtype: dtype, shape: nil)
        guard let xs = c.shape(x), xs.count >= 3 else {
            if let r = c.rank(x) { c.fail("convolution input of rank \(r)") }
            return
        }
        let spatial = xs.count - 2
        let ws = c.shape(weight)
        guard let group = convolutionGroup(&c, input: xs, weight: ws) else { return }
        if let ws, let ci = xs[1].intValue, let wc = ws[1].intValue {
            let (need, o) = wc.multipliedReportingOverflow(by: group)
            if o || need != ci {
                c.fail("\(ci) input channels, weight expects \(wc) x group \(group)")
                return
            }
        }
        let kernelFromWeight = ws.map { Array($0.dropFirst(2)) }
        var out: [Dim] = [xs[0], ws?[0] ?? .unknown]
        if let window = Window(&c, spatial: spatial, kernelFromWeight: kernelFromWeight) {
            for i in 0..<spatial { out.append(window.output(i, input: xs[i + 2])) }
        } else {
            out += Array(repeating: .unknown, count: spatial)
        }
        c.set(0, dtype: dtype, shape: out)
    }

    /// ConvTranspose: X [N, C, D...], W [C, M/group, K...] -> [N, M, O...], O from
    /// `output_shape` or stride * (D - 1) + output_padding + dilated kernel - pads.
    static func convTranspose(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0), xs.count >= 3 else { return }
        let spatial = xs.count - 2
        let ws = c.shape(1)
        guard let group = convolutionGroup(&c, input: xs, weight: ws) else { return }
        let channels = ws.map { Dim.product($0[1], .value(group)) } ?? .unknown
        var out: [Dim] = [xs[0], channels]
        if let explicit = c.ints("output_shape") {
            let tail = explicit.suffix(spatial)
            guard tail.count == spatial, tail.allSatisfy({ $0 >= 0 }) else {
                c.fail("output_shape \(explicit) for \(spatial) spatial dims")
                return
            }
            c.set(0, dtype: c.dtype(0), shape: out + tail.map(Dim.value))
            return
        }
        guard let window = Window(&c, spatial: spatial, kernelFromWeight: ws.map { Array($0.dropFirst(2)) }) else {
            c.set(0, dtype: c.dtype(0), shape: out + Array(repeating: .unknown, count: spatial))
            return
        }
        let outputPadding = c.ints("output_padding") ?? Array(repeating: 0, count: spatial)
        guard outputPadding.count == spatial, outputPadding.allSatisfy({ $0 >= 0 && $0 < Int.max / 4 }) else {
            c.fail("output_padding \(outputPadding)")
            return
        }
        for i in 0..<spatial {
            guard let n = xs[i + 2].intValue, let k = window.kernel[i].intValue, n >= 1, n < Int.max / 4,
                  window.strides[i] < Int.max / 4, k < Int.max / 4, window.dilations[i] < Int.max / 4 else {
                out.append(.unknown)
                continue
            }
            let (strided, o1) = window.strides[i].multipliedReportingOverflow(by: n - 1)
            let (dk, o2) = window.dilations[i].multipliedReportingOverflow(by: k - 1)
            if window.autoPad.hasPrefix("SAME") {
                let (v, o) = window.strides[i].multipliedReportingOverflow(by: n)
                out.append(o ? .unknown : .value(v))
                continue
            }
            guard !o1, !o2, strided < Int.max / 4, dk < Int.max / 4 else {
                out.append(.unknown)
                continue
            }
            let size = strided + outputPadding[i] + dk + 1 - window.pads[i] - window.pads[i + spatial]
            out.append(size >= 0 ? .value(size) : .unknown)
        }
        c.set(0, dtype: c.dtype(0), shape: out)
    }

    /// MaxPool / AveragePool / LpPool: [N, C, D...] -> [N, C, O...].
    static func pooling(_ c: inout ShapeRuleContext) {
        c.set(0, dtype: c.dtype(0), shape: nil)
        guard let xs = c.shape(0), xs.count >= 3 else {
            if let r = c.rank(0) { c.fail("pooling input of rank \(r)") }
            return
        }
        let spatial = xs.count - 2
        var out = Array(xs.prefix(2))
        if let window = Window(&c, spatial: spatial, kernelFromWeight: nil) {
            for i in 0..<spatial { out.append(window.output(i, input: xs[i + 2])) }
        } else {
            out += Array(repeating: .unknown, count: spatial)
        }
        c.set(0, dtype: c.dtype(0), shape: out)
    }

    /// Global pooling: [N, C, D...] -> [N, C, 1...].
    static func globalPooling(_ c: inout ShapeRuleContext) {
        guard let xs = c.shape(0), xs.count >= 2 else {
            c.set(0, dtype: c.dtype(0), shape: nil)
            return
        }
        c.set(0, dtype: c.dtype(0), shape: Array(xs.prefix(2)) + Array(repeating: .value(1), count: xs.count - 2))
    }
}
