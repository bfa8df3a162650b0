import KerfCore
import KerfGraph
#if canImport(Glibc)
import Glibc
#endif

/// SmoothQuant (Xiao et al. 2023): for each activation X read by quantizable MatMul/Gemm nodes,
/// moves per-input-channel scale from X into their weights, an exact float rewrite:
///   X·W = (X · diag(1/s)) · (diag(s) · W),  s_j = max|X_j|^α / max|W_j|^(1-α)
/// (max|W_j| over row j of every weight reading X). The nodes then read Mul(X, 1/s) and
/// weights scaled by s, so outlier channels of X no longer set the activation scale.
/// Returns the weights rescaled.
func smoothActivations(_ g: Graph, alpha: Double, setup: RunSetup, source: CalibrationSource, options: QuantizeOptions,
                       progress: ProgressHandler?) throws -> [String] {
    var matmuls = options
    matmuls.opTypes = options.opTypes.intersection(["MatMul", "Gemm"])
    matmuls.mode = .dynamic  // the node selection of MatMul/Gemm does not depend on the mode
    let targets = try quantTargets(g, options: matmuls).targets
    let groups = Dictionary(grouping: targets, by: { $0.node.inputs[0] })
    guard !groups.isEmpty else { return [] }
    let activations = groups.keys.sorted()

    // Per-channel max |x| over the last axis of each activation, streamed over the batches.
    var channelMax: [String: [Float]] = [:]
    try runBatches(g, setup: setup, values: activations, source: source, step: "smoothing", progress: progress) { ys, _ in
        for (name, y) in zip(activations, ys) where y.dtype == .float && y.rank >= 1 {
            let k = y.shape[y.rank - 1]
            var m = channelMax[name] ?? [Float](repeating: 0, count: k)
            guard m.count == k else { continue }
            y.withElements(as: Float.self) { v in
                for (i, x) in v.enumerated() { m[i % k] = max(m[i % k], abs(x)) }
            }
            channelMax[name] = m
        }
    }

    let names = NameAllocator(g)
    var constants = Dictionary(g.initializers.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    var smoothed: [String] = []
    var inserted: [Int: Node] = [:]  // node index -> Mul to emit before it
    for x in activations {
        guard let a = channelMax[x], let group = groups[x] else { continue }
        let k = a.count
        // Row j of a weight is input channel j: W[j, :] for MatMul/Gemm, W[:, j] for transB.
        guard group.allSatisfy({ constants[$0.weight]!.shape[$0.channelAxis == 0 ? 1 : 0] == k }) else { continue }
        var w = [Float](repeating: 0, count: k)
        for t in group {
            let weight = constants[t.weight]!
            let cols = weight.shape[1]
            weight.withElements(as: Float.self) { v in
                for (i, value) in v.enumerated() {
                    let j = t.channelAxis == 0 ? i % cols : i / cols
                    w[j] = max(w[j], abs(value))
                }
            }
        }
        let s: [Float] = (0..<k).map { j in
            guard a[j] > 0, w[j] > 0 else { return 1 }
            let v = Double(a[j]).power(alpha) / Double(w[j]).power(1 - alpha)
            return Float(min(max(v, 1e-5), 1e5))
        }
        let inverse = g.addConstant(x + "_smooth_scale", Tensor(shape: [k], values: s.map { 1 / $0 }), names: names)
        let xs = names.make(x + "_smoothed")
        let first = group.map(\.index).min()!
        inserted[first] = Node(name: names.make(x + "_smooth_Mul"), opType: "Mul", inputs: [x, inverse], outputs: [xs])
        for t in group {
            var v = constants[t.weight]!.array(of: Float.self)
            let cols = constants[t.weight]!.shape[1]
            for i in v.indices { v[i] *= s[t.channelAxis == 0 ? i % cols : i / cols] }
            let name = g.addConstant(t.weight + "_smoothed", Tensor(shape: constants[t.weight]!.shape, values: v), names: names)
            constants[name] = g.initializers.last!.tensor
            g.nodes[t.index].inputs[0] = xs
            g.nodes[t.index].inputs[1] = name
            smoothed.append(t.weight)
        }
    }
    g.nodes = g.nodes.enumerated().flatMap { i, n in inserted[i].map { [$0, n] } ?? [n] }
    g.removeUnreadInitializers()
    return smoothed
}

private extension Double {
    func power(_ e: Double) -> Double { pow(self, e) }
}
