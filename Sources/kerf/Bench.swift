import ArgumentParser
import KerfCore
import KerfKernels
import KerfRuntime
#if canImport(Glibc)
import Glibc
#endif

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure a model's latency on random inputs.")

    @Argument(help: "The ONNX model file.") var model: String
    @Option(help: "Intra-op threads (0 = one per core).") var threads: Int = 1
    @Option(help: "Value for the first symbolic dimension of each input.") var batch: Int = 1
    @Option(name: .customLong("dim"), help: ArgumentHelp("A value for a named symbolic dimension, e.g. --dim sequence=128 (repeatable). Of the other symbolic dimensions of an input, the first takes --batch and the rest 1.", valueName: "name=value"))
    var dims: [String] = []
    @Option(help: "Timed runs after warm-up.") var runs: Int = 30
    @Option(help: "Warm-up runs.") var warmup: Int = 5
    @Option(help: "Allocation limit in bytes for all tensor memory (0 = 80% of physical memory).") var memoryLimit: Int = 0
    @Flag(help: "Dense kernels only: no sparse kernels for mostly-zero weights.") var dense = false
    @Flag(help: "Also time ONNX Runtime (python3 + onnxruntime) on the same inputs and print both.") var compareOrt = false
    @Flag(help: "Then time each operator over as many more runs and print where the time goes.") var profile = false

    func run() throws {
        guard batch >= 1, runs >= 1, warmup >= 0 else { throw KerfError.invalidArgument("--batch and --runs must be >= 1") }
        guard memoryLimit >= 0 else { throw KerfError.invalidArgument("--memory-limit must be >= 0") }
        MemoryLimit.processBytes = memoryLimit
        let m = try Model.load(path: model)
        let session = try Session(model: m, options: SessionOptions(threads: threads, sparseKernels: !dense))
        var feeds: [String: Tensor] = [:]
        let named = try namedDimensions(dims)
        for input in session.inputs { feeds[input.name] = try randomInput(input, batch: batch, named: named) }
        let pairs = feeds.map { (name: $0.key, tensor: $0.value) }  // as the C API runs (no array made per run)
        for _ in 0..<warmup { _ = try session.run(feeding: pairs) }
        var times: [Double] = []
        for _ in 0..<runs {
            let start = monotonicSeconds()
            _ = try session.run(feeding: pairs)
            times.append(monotonicSeconds() - start)
        }
        times.sort()
        let median = times[times.count / 2], p90 = times[min(times.count - 1, times.count * 9 / 10)]
        print("model: \(model)  batch: \(batch)  threads: \(threads)  runs: \(runs)  isa: \(InstructionSet.inUse.name)")
        print("inputs: " + session.inputs.map { "\($0.name) \(feeds[$0.name]!.shape)" }.joined(separator: ", "))
        defer { if profile { try? printProfile(session, feeds) } }
        guard compareOrt else {
            print("median: \(decimal(median * 1000, places: 4)) ms  p90: \(decimal(p90 * 1000, places: 4)) ms  min: \(decimal(times[0] * 1000, places: 4)) ms")
            return
        }
        func row(_ engine: String, _ median: Double, _ p90: Double, _ min: Double) -> String {
            engine.padding(to: 12) + " " + "\(decimal(median * 1000, places: 4)) ms".padding(to: 12) + " " + "\(decimal(p90 * 1000, places: 4)) ms".padding(to: 12)
                + " " + "\(decimal(min * 1000, places: 4)) ms"
        }
        print("engine".padding(to: 12) + " " + "median".padding(to: 12) + " " + "p90".padding(to: 12) + " min")
        print(row("kerf", median, p90, times[0]))
        switch try OrtComparison.measure(model: model, feeds: feeds, threads: session.options.resolvedThreads, runs: runs, warmup: warmup) {
        case .failure(let unavailable):
            print("onnxruntime  unavailable: \(unavailable.reason)")
        case .success(let ort):
            print(row("onnxruntime", ort.median, ort.p90, ort.min))
            print("kerf/ort median ratio: \(decimal(median / ort.median, places: 3))")
        }
    }

    /// Times every operator over `runs` more runs and prints the operator types by time per run.
    private func printProfile(_ session: Session, _ feeds: [String: Tensor]) throws {
        session.startProfiling()
        for _ in 0..<runs { _ = try session.run(feeds) }
        let rows = session.profile()
        let total = rows.reduce(0) { $0 + $1.secondsPerRun }
        print("operator".padding(to: 28) + " " + "ms/run".padding(to: 10) + " " + "share".padding(to: 7) + " steps")
        for row in rows {
            print(row.operator.padding(to: 28) + " " + decimal(row.secondsPerRun * 1000, places: 4).padding(to: 10) + " "
                  + "\(decimal(100 * row.secondsPerRun / max(total, 1e-12), places: 1))%".padding(to: 7) + " \(row.steps)")
        }
        print("total".padding(to: 28) + " " + decimal(total * 1000, places: 4))
        print("shape steps reused per run: \(decimal(session.reusedStepsPerRun(), places: 1)) of \(session.plan.count) "
              + "(computed from the same shapes as the run before)")
        let slowest = session.stepProfile().sorted { $0.secondsPerRun > $1.secondsPerRun }.prefix(slowestSteps)
        print("\nslowest steps".padding(to: 29) + " " + "ms/run".padding(to: 10) + " operator")
        for step in slowest {
            print(String(step.node.prefix(28)).padding(to: 28) + " " + decimal(step.secondsPerRun * 1000, places: 4).padding(to: 10) + " " + step.operator)
        }
    }

    /// How many single steps `--profile` lists after the operator types.
    private let slowestSteps = 15
}

/// "name=value" options as a map from dimension name to a positive size.
func namedDimensions(_ options: [String]) throws -> [String: Int] {
    var named: [String: Int] = [:]
    for option in options {
        let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, let value = Int(parts[1]), value >= 1 else {
            throw KerfError.invalidArgument("--dim takes name=value with a positive value, got '\(option)'")
        }
        named[parts[0]] = value
    }
    return named
}

/// The largest random input `kerf bench` makes, in bytes (1 GiB): a declared shape is the
/// model's word, and filling terabytes would end in a failed allocation.
let maxRandomInputBytes = 1 << 30

/// Uniform [0, 1) data (or small integers) of the input's declared shape; a symbolic dim takes
/// its value from `named`, else `batch` for the first one and 1 after it. Throws
/// `.invalidArgument` when the tensor would exceed `maxRandomInputBytes` (or its size overflows).
func randomInput(_ info: ValueInfo, batch: Int, named: [String: Int] = [:]) throws -> Tensor {
    guard let dtype = info.dtype, let shape = info.shape else {
        throw KerfError.unsupported("input '\(info.name)' has no declared dtype and shape; cannot make random data")
    }
    var first = true
    let dims = shape.map { d -> Int in
        if case .value(let v) = d { return v }
        defer { first = false }  // a named first dimension takes --batch's place
        if case .symbol(let name) = d, let v = named[name] { return v }
        return first ? batch : 1
    }
    var bytes = Swift.max(dtype.byteSize, 1)
    for d in dims {
        let (b, overflow) = bytes.multipliedReportingOverflow(by: d)
        guard !overflow, b <= maxRandomInputBytes else {
            throw KerfError.invalidArgument("input '\(info.name)' of shape \(dims) (\(dtype)) is larger than the \(maxRandomInputBytes >> 20) MiB "
                                            + "kerf bench fills with random data; choose smaller symbolic dims with --batch or --dim")
        }
        bytes = b
    }
    var t = try Tensor(zeros: dtype, shape: dims)
    var state: UInt64 = 0x9E3779B97F4A7C15
    func next() -> Double {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Double(state >> 11) / Double(1 << 53)
    }
    switch dtype {
    case .float: t.withMutableElements(as: Float.self) { for i in 0..<$0.count { $0[i] = Float(next()) } }
    case .int64: t.withMutableElements(as: Int64.self) { for i in 0..<$0.count { $0[i] = Int64(next() * 8) } }
    case .int32: t.withMutableElements(as: Int32.self) { for i in 0..<$0.count { $0[i] = Int32(next() * 8) } }
    default: break
    }
    return t
}
