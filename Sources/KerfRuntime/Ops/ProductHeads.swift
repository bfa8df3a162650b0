import KerfCore
import KerfKernels

/// The head-layout stage of a fused product's epilogue (`QuantizedEpilogue.Heads`) made ready
/// to run: the float product written straight into an attention's head-major layout, or, for a
/// shape that does not split the product's last axis into heads, the graph's Reshape and
/// Transpose run on the product as it is.
struct ProductHeads {
    /// The position of the Reshape's shape (a run-time value) among the node's inputs.
    let shapeInput: Int
    let keysTransposed: Bool
    let fallback: HeadFallback

    /// Nil without a head-layout stage.
    init?(_ stage: QuantizedEpilogue.Heads?, _ c: OperatorContext) throws {
        guard let stage else { return nil }
        shapeInput = try c.position(of: stage.shape)
        keysTransposed = stage.keysTransposed
        fallback = try HeadFallback(c, keysTransposed: keysTransposed)
    }

    /// The head layout for this run and the output's shape, or nil when the run's shape does
    /// not split the product's last axis into heads (the product is then written as it is and
    /// `applyUnfused` reshapes and transposes it).
    func layout(_ inputs: [Tensor?], productShape: [Int]) -> (HeadLayout, [Int])? {
        guard inputs.count > shapeInput, let shapeTensor = inputs[shapeInput] else { return nil }
        guard shapeTensor.dtype == .int64, shapeTensor.count == 4, productShape.count >= 2 else { return nil }
        var dims = shapeTensor.array(of: Int64.self).map(Int.init)
        for i in 0..<4 where dims[i] == 0 {
            guard i < productShape.count else { return nil }
            dims[i] = productShape[i]
        }
        let total = productShape.reduce(1, *)
        if let unknown = dims.firstIndex(of: -1) {
            let known = dims.enumerated().filter { $0.offset != unknown }.reduce(1) { $0 * $1.element }
            guard known > 0, total % known == 0 else { return nil }
            dims[unknown] = total / known
        }
        let n = productShape[productShape.count - 1], rows = total / max(n, 1)
        guard dims.allSatisfy({ $0 >= 0 }), dims[0] * dims[1] == rows, dims[2] * dims[3] == n, dims[1] > 0 else { return nil }
        let layout = HeadLayout(sequence: dims[1], heads: dims[2], headSize: dims[3], keysTransposed: keysTransposed)
        return (layout, layout.shape(batch: dims[0]))
    }

    /// y (the product, written as it is) reshaped by the run's shape and transposed.
    func applyUnfused(_ y: Tensor, _ inputs: [Tensor?]) throws -> Tensor {
        guard inputs.count > shapeInput, let shape = inputs[shapeInput] else { return y }
        return try fallback.transpose.run([try fallback.reshape.run([y, shape])[0]])[0]
    }
}

/// The graph's Reshape and Transpose themselves, for a head shape `ProductHeads.layout` does not take.
struct HeadFallback {
    let reshape: Operator, transpose: Operator

    init(_ c: OperatorContext, keysTransposed: Bool) throws {
        func op(_ type: String, _ attributes: [Attribute]) throws -> Operator {
            let node = Node(name: c.node.name, opType: type, inputs: ["x", "s"], outputs: ["y"], attributes: attributes)
            return try OperatorRegistry.makeOperator(OperatorContext(node: node, opset: max(c.opset, 14), constantInputs: [nil, nil], options: c.options))
        }
        reshape = try op("Reshape", [])
        transpose = try op("Transpose", [Attribute(name: "perm", value: .ints(keysTransposed ? [0, 2, 3, 1] : [0, 2, 1, 3]))])
    }
}
