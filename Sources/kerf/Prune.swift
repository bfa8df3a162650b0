import ArgumentParser
import KerfCompress
import FoundationEssentials
import KerfCore

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prune the Conv, Gemm and MatMul weights of a model.",
        discussion: """
            magnitude zeroes the smallest weights; N:M (e.g. 2:4) keeps N of every M along the \
            reduction dimension; channel removes whole filters and units and rewrites their \
            consumers, so the file gets smaller. Without -o the model is rewritten in place, atomically.
            """)

    @Argument(help: "The ONNX model file.") var model: String
    @Option(name: .shortAndLong, help: "Where to write the pruned model (default: rewrite MODEL in place).") var output: String?
    @Option(help: "Fraction of weights (magnitude) or channels (channel) to remove, in [0, 1).") var sparsity: Double = 0.5
    @Option(help: "magnitude, channel, or N:M such as 2:4.") var method: String = "magnitude"
    @Option(help: "layer (each tensor to the target) or global (one threshold).") var scope: String = "layer"
    @Option(help: "Per-tensor cap in global scope.") var maxTensorSparsity: Double = 0.99
    @Option(help: "Channel ranking: l1, l2 or bn_gamma.") var criterion: String = "l1"
    @Option(help: "Channel pruning keeps a multiple of this many channels in every larger group (16 keeps ONNX Runtime's blocked convolutions fast); 1: no rounding.")
    var channelMultiple: Int = 1
    @Option(help: "Leave weights with fewer elements alone.") var minElements: Int = 0
    @Option(parsing: .upToNextOption, help: "Weight names, node names or op types to leave alone.") var exclude: [String] = []
    @Flag(help: "Save weights whose sparse form is smaller as sparse_initializer.") var storeSparse = false
    @Option(help: "Also write the report as JSON to this file.") var report: String?

    func run() throws {
        var o = PruneOptions()
        o.method = try parseMethod(method)
        guard let s = PruneScope(rawValue: scope) else { throw KerfError.invalidArgument("--scope must be layer or global, got '\(scope)'") }
        guard let c = ChannelCriterion(rawValue: criterion) else {
            throw KerfError.invalidArgument("--criterion must be l1, l2 or bn_gamma, got '\(criterion)'")
        }
        o.scope = s
        o.channelCriterion = c
        o.sparsity = sparsity
        o.maxTensorSparsity = maxTensorSparsity
        o.minElements = minElements
        o.channelMultiple = channelMultiple
        o.exclude = NameFilter(exclude)
        o.storeSparse = storeSparse
        let m = try Model.load(path: model)
        let bar = ProgressBar("prune")
        let result = try prune(m, options: o, progress: bar.update)
        let destination = output ?? model
        try m.save(path: destination)
        if let report { try FileIO.writeAtomically(Data(try result.json().utf8), to: report) }
        print(summary(result))
        print("wrote \(destination)")
    }
}

/// "magnitude", "channel" or "N:M".
func parseMethod(_ text: String) throws -> PruneMethod {
    switch text {
    case "magnitude": return .magnitude
    case "channel": return .channel
    default:
        let parts = text.split(separator: ":")
        guard parts.count == 2, let n = Int(parts[0]), let m = Int(parts[1]) else {
            throw KerfError.invalidArgument("--method must be magnitude, channel or N:M (e.g. 2:4), got '\(text)'")
        }
        return .nOfM(n: n, m: m)
    }
}

/// The report as a table for a terminal.
func summary(_ r: PruneReport) -> String {
    var lines = ["\(r.method) pruning, \(r.scope) scope, target sparsity \(percent(r.targetSparsity))"]
    let nameWidth = min(40, r.tensors.map(\.name.count).max() ?? 4)
    for t in r.tensors {
        let shape = t.shapeBefore == t.shape ? "\(t.shape)" : "\(t.shapeBefore) -> \(t.shape)"
        lines.append("  \(t.name.padding(to: nameWidth)) \(t.opType.padding(to: 8)) \(shape.padding(to: 24)) \(percent(t.sparsity)) zeros"
                     + (t.storedSparse ? " (stored sparse)" : ""))
    }
    for s in r.skipped { lines.append("  skipped \(s.name): \(s.reason)") }
    lines.append("overall sparsity of pruned weights \(percent(r.overallSparsity)); "
                 + "parameters \(r.parametersBefore) -> \(r.parametersAfter) (non-zero \(r.nonzeroParametersBefore) -> \(r.nonzeroParametersAfter)); "
                 + "bytes \(r.bytesBefore) -> \(r.bytesAfter)")
    return lines.joined(separator: "\n")
}
