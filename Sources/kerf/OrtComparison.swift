import FoundationEssentials
import KerfCore
#if canImport(Glibc)
import Glibc
#endif

/// Latency of ONNX Runtime on the same model and inputs, measured by a `python3` child
/// process (ONNX Runtime is a Python package here).
struct OrtComparison {
    var median: Double
    var p90: Double
    var min: Double

    /// Why ONNX Runtime could not be timed (python3 or onnxruntime missing, or it failed).
    struct Unavailable: Error {
        var reason: String
    }

    /// Times `runs` runs of `model` in ONNX Runtime (after `warmup`) with `threads` intra-op
    /// threads on exactly `feeds`. Times are in seconds. Throws only when Kerf cannot prepare
    /// the run (temporary files); ONNX Runtime's own absence or failure is the `.failure`.
    static func measure(model: String, feeds: [String: Tensor], threads: Int, runs: Int, warmup: Int) throws
        -> Result<OrtComparison, Unavailable> {
        var template = Array("/tmp/kerf-bench-XXXXXX".utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw KerfError.io("cannot create a temporary directory: \(String(cString: strerror(errno)))")
        }
        defer {
            unlink(dir + "/feeds.npz")
            unlink(dir + "/ort_bench.py")
            rmdir(dir)
        }
        try NumpyFile.writeArchive(feeds.map { (name: $0.key, tensor: $0.value) }, path: dir + "/feeds.npz")
        try FileIO.writeAtomically(Data(script.utf8), to: dir + "/ort_bench.py")
        let command = "python3 \(quoted(dir + "/ort_bench.py")) \(quoted(model)) \(quoted(dir + "/feeds.npz")) \(threads) \(runs) \(warmup) 2>&1"
        guard let pipe = popen(command, "r") else { throw KerfError.io("cannot start python3") }
        var output = ""
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil { output += String(cString: buffer) }
        let status = pclose(pipe)
        let lines = output.split(separator: "\n").map(String.init)
        if status != 0 || lines.last?.hasPrefix("ort ") != true {
            return .failure(Unavailable(reason: lines.last(where: { !$0.isEmpty }) ?? "python3 exited with status \(status)"))
        }
        let numbers = lines.last!.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard numbers.count == 3 else { return .failure(Unavailable(reason: "unexpected output: \(lines.last!)")) }
        return .success(OrtComparison(median: numbers[0], p90: numbers[1], min: numbers[2]))
    }

    private static func quoted(_ s: String) -> String { "'" + s.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'" }

    private static let script = """
        import sys, time
        try:
            import numpy as np
            import onnxruntime as ort
        except ImportError as error:
            print(f"onnxruntime is not importable ({error}); pip install onnxruntime")
            sys.exit(3)
        model, feeds_path, threads, runs, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        with np.load(feeds_path) as archive:
            feeds = {name: archive[name] for name in archive.files}
        for _ in range(warmup):
            session.run(None, feeds)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, feeds)
            times.append(time.perf_counter() - start)
        times.sort()
        print("ort", times[len(times) // 2], times[min(len(times) - 1, len(times) * 9 // 10)], times[0])
        """
}
