import ArgumentParser
import KerfCore
import KerfGraph

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a model's interface, opsets, operators and size.")

    @Argument(help: "The ONNX model file.") var model: String
    @Flag(help: "Also print every value's statically inferred dtype and shape, one per line.") var shapes = false

    func run() throws {
        let m = try Model.load(path: model)
        let g = m.graph
        print("model: \(model)")
        print("ir_version: \(m.irVersion)  producer: \(m.producerName) \(m.producerVersion)".trimmingTrailingSpaces)
        print("opsets: " + m.opsetImports.map { "\($0.domain.isEmpty ? "ai.onnx" : $0.domain) \($0.version)" }.joined(separator: ", "))
        print("inputs:")
        for v in g.runtimeInputs { print("  \(describe(v))") }
        print("outputs:")
        for v in g.outputs { print("  \(describe(v))") }
        var histogram: [String: Int] = [:]
        for n in g.nodes { histogram[n.opType, default: 0] += 1 }
        print("operators (\(g.nodes.count) nodes):")
        for (op, count) in histogram.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
            print("  \(op.padding(to: 24)) \(count)")
        }
        let parameters = g.initializers.reduce(0) { $0 + $1.tensor.count }
        let bytes = g.initializers.reduce(0) { $0 + $1.tensor.byteCount }
        print("parameters: \(parameters) in \(g.initializers.count) initializers, \(formatBytes(bytes))")
        if shapes { printInferredTypes(m) }
    }

    /// "values (K):" then one "  name: dtype shape" line per value (runtime inputs, initializers,
    /// node outputs in file order; "?" for an unknown dtype, dim or rank), then the diagnostics.
    private func printInferredTypes(_ m: Model) {
        let g = m.graph
        let inferred = m.inferTypes()
        var names: [String] = []
        var seen = Set<String>()
        for name in g.runtimeInputs.map(\.name) + g.initializers.map(\.name) + g.nodes.flatMap(\.outputs)
        where !name.isEmpty && seen.insert(name).inserted {
            names.append(name)
        }
        print("values (\(names.count)):")
        for name in names {
            switch inferred.type(of: name) {
            case .tensor(let dtype, let shape)?:
                let dims = shape.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "?"
                print("  \(name): \(dtype.map(\.description) ?? "?") \(dims)")
            case .other(let kind)?:
                print("  \(name): \(kind) ?")
            case nil:
                print("  \(name): ? ?")
            }
        }
        print("diagnostics (\(inferred.diagnostics.count)):")
        for d in inferred.diagnostics { print("  \(d)") }
    }
}

func describe(_ v: ValueInfo) -> String {
    let dtype = v.dtype.map(\.description) ?? "?"
    let shape = v.shape.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "[?]"
    return "\(v.name): \(dtype) \(shape)"
}

func formatBytes(_ n: Int) -> String {
    if n >= 1 << 20 { return decimal(Double(n) / Double(1 << 20), places: 1) + " MiB" }
    if n >= 1 << 10 { return decimal(Double(n) / Double(1 << 10), places: 1) + " KiB" }
    return "\(n) B"
}

extension String {
    var trimmingTrailingSpaces: String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
