import KerfCore
import KerfKernels

/// The residual stage of an int8 MatMul's epilogue (`QuantizedEpilogue.Residual`: a
/// transformer's residual connection and the LayerNormalization after it) made ready to run:
/// Y = LayerNorm(product + R) over the last axis, each row by the LayerNormalization kernel while
/// the block is in cache — the Add's and the LayerNorm's own arithmetic.
struct ProductTail {
    /// The position of the residual R (a run-time value, the product's shape on the fused path)
    /// among the node's inputs.
    let residualInput: Int
    /// LayerNorm's scale and bias [N] (nil: no LayerNorm; no bias).
    let scale: [Float]?, bias: [Float]?
    let epsilon: Float

    /// Nil without a residual stage; `n`: the product's columns.
    init?(_ stage: QuantizedEpilogue.Residual?, _ c: OperatorContext, n: Int) throws {
        guard let stage else { return nil }
        residualInput = try c.position(of: stage.value)
        if let ln = stage.layerNorm {
            epsilon = ln.epsilon
            let s = try floatScalars(try c.requiredConstant(named: ln.scale, "LayerNorm scale"))
            let b = try ln.bias.map { try floatScalars(try c.requiredConstant(named: $0, "LayerNorm bias")) }
            guard s.count == n, b == nil || b!.count == n else { throw KerfError.invalidModel("\(c.node.label): LayerNorm parameters must have \(n) values") }
            (scale, bias) = (s, b)
        } else {
            (epsilon, scale, bias) = (0, nil, nil)
        }
    }

    /// The residual, when it fits the fused path (float, the product's shape).
    func residual(_ inputs: [Tensor?], productShape: [Int]) throws -> Tensor? {
        let r = try inputs.required(residualInput, "residual")
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
        let sum = try arithmetic(.add, y, try inputs.required(residualInput, "residual"))
        guard let scale else { return sum }
        return try layerNormalization(sum, scale: Tensor(shape: [scale.count], values: scale),
                                      bias: bias.map { Tensor(shape: [$0.count], values: $0) }, axis: -1, epsilon: epsilon, stashType: 1)[0]
    }
}
