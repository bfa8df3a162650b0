import KerfCore
import KerfGraph

extension Graph {
    /// torch.onnx.export writes `nn.Linear` as Transpose(W) → MatMul(X, ·) → Add(bias, ·). Each
    /// such chain whose weight W [n, k] is a 2-D float initializer (and bias, when there is an
    /// Add, a float initializer of n elements) becomes Gemm(X, W, bias, transB = 1), X of rank
    /// r > 2 flattened to [rows, k] before it and the product reshaped to X's leading dims + [n]
    /// after. The same values; but differentiated, the Gemm's gradients come out in W's own layout
    /// and the bias is added in the product: no transposes, no separate bias pass, forward or
    /// backward. Chains whose intermediate values other nodes read, or whose X has no known rank,
    /// are left alone. Opset 13 and later (Slice by inputs, Flatten at any axis).
    func fuseExportedLinearLayers(opset: Int) {
        guard opset >= 13 else { return }
        let m = Matcher(self, constantNodes: false)
        let types = inferTypes(opset: opset)
        let names = NameAllocator(self)
        var patch = GraphPatch()
        for (mi, matmul) in nodes.enumerated() where matmul.isDefaultDomain && matmul.opType == "MatMul" && matmul.inputs.count == 2 {
            let x = matmul.inputs[0], transposed = matmul.inputs[1]
            guard let (ti, transpose) = m.node(transposed, "Transpose"), m.readOnly(transposed, by: 1),
                  case .ints(let perm)? = transpose.attribute("perm"), perm == [1, 0],
                  let weight = m.constants[transpose.inputs[0]], weight.dtype == .float, weight.rank == 2,
                  let rank = types.shape(of: x)?.count, rank >= 2, types.dtype(of: x) == .float,
                  !patch.touches(ti), !patch.touches(mi) else { continue }
            let n = weight.shape[0]
            var inputs = [x, transpose.inputs[0]]
            var output = matmul.outputs[0]
            var chain = [ti, mi]
            // The bias Add, when the product's only reader adds a float vector of n elements.
            if m.readOnly(output, by: 1),
               let ai = nodes.firstIndex(where: { $0.isDefaultDomain && $0.opType == "Add" && $0.inputs.count == 2 && $0.inputs.contains(output) }),
               !patch.touches(ai), let bias = m.other(nodes[ai], than: output), let b = m.constants[bias],
               b.dtype == .float, b.rank == 1, b.count == n {
                inputs.append(bias)
                output = nodes[ai].outputs[0]
                chain.append(ai)
            }
            var emitted: [Node] = []
            if rank > 2 {
                let rows = names.make(x + "_rows")
                emitted.append(node(names.make(matmul.name + "_flatten"), "Flatten", [x], [rows], [Attribute(name: "axis", value: .int(Int64(rank - 1)))]))
                inputs[0] = rows
            }
            let product = rank > 2 ? names.make(output + "_rows") : output
            emitted.append(node(names.make(matmul.name + "_gemm"), "Gemm", inputs, [product], [Attribute(name: "transB", value: .int(1))]))
            if rank > 2 {
                // [rows, n] back to X's leading dims + [n].
                let shape = names.make(x + "_shape"), leading = names.make(x + "_leading"), target = names.make(output + "_shape")
                let zero = names.make("zero"), minusOne = names.make("minus_one"), width = names.make("width")
                patch.addInitializer(zero, Tensor(shape: [1], values: [Int64(0)]))
                patch.addInitializer(minusOne, Tensor(shape: [1], values: [Int64(-1)]))
                patch.addInitializer(width, Tensor(shape: [1], values: [Int64(n)]))
                emitted.append(node(names.make(matmul.name + "_shape"), "Shape", [x], [shape]))
                emitted.append(node(names.make(matmul.name + "_leading"), "Slice", [shape, zero, minusOne], [leading]))
                emitted.append(node(names.make(matmul.name + "_target"), "Concat", [leading, width], [target], [Attribute(name: "axis", value: .int(0))]))
                emitted.append(node(names.make(matmul.name + "_reshape"), "Reshape", [product, target], [output]))
            }
            // The new nodes take the place of the chain's last node.
            let last = chain.max()!
            patch.remove(contentsOf: chain)
            patch.insert(Array(emitted.dropLast()), before: last)
            patch.replace(last, with: emitted.last!)
        }
        patch.apply(to: self)
    }

    private func node(_ name: String, _ op: String, _ inputs: [String], _ outputs: [String], _ attributes: [Attribute] = []) -> Node {
        Node(name: name, opType: op, inputs: inputs, outputs: outputs, attributes: attributes)
    }
}
