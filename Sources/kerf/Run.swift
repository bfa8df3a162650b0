import ArgumentParser
import KerfCore
import KerfRuntime

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a model on inputs read from .npy files.")

    @Argument(help: "The ONNX model file.") var model: String
    @Option(name: .customLong("input"), help: "NAME=FILE.npy, once per model input.") var inputs: [String] = []
    @Option(name: .shortAndLong, help: "Write all outputs to this .npz file (default: print a summary).") var output: String?
    @Option(name: .customLong("value"),
            help: "Return this value instead of the graph outputs, once per value: any value of the model, graph output or not.")
    var values: [String] = []
    @Option(help: "Intra-op threads (0 = one per core).") var threads: Int = 0
    @Option(help: "Allocation limit in bytes for all tensor memory (0 = 80% of physical memory).") var memoryLimit: Int = 0

    func run() throws {
        guard memoryLimit >= 0 else { throw KerfError.invalidArgument("--memory-limit must be >= 0") }
        MemoryLimit.processBytes = memoryLimit
        let m = try Model.load(path: model)
        var feeds: [String: Tensor] = [:]
        for spec in inputs {
            guard let eq = spec.firstIndex(of: "=") else {
                throw KerfError.invalidArgument("--input '\(spec)' must look like NAME=FILE.npy")
            }
            feeds[String(spec[..<eq])] = try NumpyFile.readArray(path: String(spec[spec.index(after: eq)...]))
        }
        // Named values are kept from fusion, so that any of them can be returned.
        let session = try Session(model: m, options: SessionOptions(threads: threads, keptValues: values))
        let names = values.isEmpty ? session.outputs.map(\.name) : values
        let results = try session.run(feeds, outputNames: names)
        let named = zip(names, results).map { (name: $0.0, tensor: $0.1) }
        if let output {
            try NumpyFile.writeArchive(named, path: output)
            print("wrote \(named.count) outputs to \(output)")
        } else {
            for (name, t) in named { print("\(name): \(t.dtype) \(t.shape) \(preview(t))") }
        }
    }
}

/// The first few values of a tensor, for a terminal.
func preview(_ t: Tensor) -> String {
    let n = min(t.count, 8)
    let values: [String]
    switch t.dtype {
    case .float: values = t.withElements(as: Float.self) { $0.prefix(n).map { "\($0)" } }
    case .int64: values = t.withElements(as: Int64.self) { $0.prefix(n).map { "\($0)" } }
    case .int32: values = t.withElements(as: Int32.self) { $0.prefix(n).map { "\($0)" } }
    default: return ""
    }
    return "[" + values.joined(separator: ", ") + (t.count > n ? ", ...]" : "]")
}
