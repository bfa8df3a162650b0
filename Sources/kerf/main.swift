import ArgumentParser
import KerfCore
#if canImport(Glibc)
import Glibc
#endif

struct KerfCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kerf",
        abstract: "Run and compress ONNX models on the CPU.",
        version: "0.1.0",
        subcommands: [Inspect.self, Run.self, Bench.self, Prune.self, Sensitivity.self, Quantize.self, Student.self, Train.self, Distill.self])
}

// Kerf's own errors are one readable line and exit status 1; usage errors go through
// ArgumentParser (help text, exit status 64).
do {
    var command = try KerfCommand.parseAsRoot()
    try command.run()
} catch let error as KerfError {
    fputs("kerf: \(error.message)\n", stderr)
    exit(1)
} catch {
    KerfCommand.exit(withError: error)
}
