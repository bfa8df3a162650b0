import KerfCore

/// The optimizer passes whose result is plain ONNX any runtime runs: Identity and inference
/// Dropout removed, BatchNormalization after Conv folded into the Conv's weights and bias, dead
/// nodes and unread initializers dropped. Compression tools apply them to the graph they
/// rewrite (quantizing a Conv whose BatchNorm stays float would quantize the wrong tensor).
public func applyPortableRewrites(_ g: Graph, opset: Int) {
    GraphOptimizer.removePassThroughNodes(g)
    GraphOptimizer.foldBatchNormIntoConv(g, opset: opset)
    GraphOptimizer.removeDeadNodes(g)
}
