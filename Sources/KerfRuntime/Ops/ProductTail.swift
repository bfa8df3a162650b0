import KerfCore
import KerfKernels

/// What an int8 MatMul's epilogue may finish after its float output (a transformer's residual
/// connection and the LayerNormalization after it): inputs base, base + 1, base + 2 are the
/// residual R (same shape as the product), LayerNorm's scale and bias (constants [N], or empty
/// inputs without a LayerNorm); attribute kerf.layer_norm_epsilon marks the LayerNorm. Y =
/// LayerNorm(product + R) over the last axis, each row by the LayerNormalization kernel while
/// the block is in cache — the Add's and the LayerNorm's own arithmetic.
struct ProductTail {
    let base: Int
    let scale: [Float]?, bias: [Float]?
    let epsilon: Float

    /// Nil when the node has no residual input at `base`.
    init?(_ c: OperatorContext, base: Int, n: Int) throws {
        guard c.node.inputs.count > base, !c.node.inputs[base].isEmpty else { return nil }
        self.base = base
        if c.node.attribute("kerf.layer_norm_epsilon") != nil {
            epsilon = try c.float("kerf.layer_norm_epsilon", default: 1e-5)
            let s = try floatScalars(try c.requiredConstant(base + 1, "LayerNorm scale"))
            let b = try c.optionalConstant(base + 2, "LayerNorm bias").map(floatScalars)
            guard s.count == n, b == nil || b!.count == n else { throw KerfError.invalidModel("\(c.node.label): LayerNorm parameters must have \(n) values") }
            (scale, bias) = (s, b)
        } else {
            (epsilon, scale, bias) = (0, nil, nil)
        }
    }

    /// The residual, when it fits the fused path (float, the product's shape).
    func residual(_ inputs: [Tensor?], productShape: [Int]) throws -> Tensor? {
        let r = try inputs.required(base, "residual")
        return r.dtype == .float && r.shape == productShape ? r : nil
    }

    /// block[rows, n] (rows first ..< first + count of the product) += R's rows, then LayerNorm,
    /// the sum going through `scratch` (count * n floats; the kernel's loops vectorize only
    /// between distinct buffers).
    func apply(_ block: UnsafeMutablePointer<Float>, first: Int, count: Int, n: Int, residual: UnsafePointer<Float>,
               scratch: UnsafeMutablePointer<Float>) {
        let r = residual + first * n
        guard let scale else {
            for i in 0..<(count * n) { block[i] = block[i] + r[i] }
            return
        }
        for i in 0..<(count * n) { scratch[i] = block[i] + r[i] }
        scale.withUnsafeBufferPointer { s in
            withOptionalBuffer(bias) { b in
                layerNorm(scratch, block, rows: count, n: n, scale: s.baseAddress!, bias: b?.baseAddress, epsilon: epsilon, mean: nil, invStdDev: nil)
            }
        }
    }

    /// The same with the graph's operators, for a residual of another shape or type.
    func applyUnfused(_ y: Tensor, _ inputs: [Tensor?]) throws -> Tensor {
        let sum = try arithmetic(.add, y, try inputs.required(base, "residual"))
        guard let scale else { return sum }
        return try layerNormalization(sum, scale: Tensor(shape: [scale.count], values: scale),
                                      bias: bias.map { Tensor(shape: [$0.count], values: $0) }, axis: -1, epsilon: epsilon, stashType: 1)[0]
    }
}
