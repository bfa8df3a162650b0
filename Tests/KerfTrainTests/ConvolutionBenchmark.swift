import Foundation
import KerfCore
import KerfRuntime
import XCTest

/// Times Conv's backward ops in float (set KERF_BENCH=1 to run): N=32, C=M=64, 56x56, 3x3, pad 1.
final class ConvolutionBenchmark: XCTestCase {
    func testConvBackwardSpeed() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["KERF_BENCH"] != nil, "set KERF_BENCH=1 to time")
        let env = ProcessInfo.processInfo.environment
        let n = Int(env["KERF_BENCH_N"] ?? "") ?? 32, c = Int(env["KERF_BENCH_C"] ?? "") ?? 64, size = Int(env["KERF_BENCH_HW"] ?? "") ?? 56
        let threads = Int(env["KERF_BENCH_THREADS"] ?? "") ?? 2
        let attributes = [Attribute(name: "pads", value: .ints([1, 1, 1, 1])), Attribute(name: "kernel_shape", value: .ints([3, 3]))]
        let conv = Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: attributes)
        let shapes = [Node(name: "sx", opType: "Shape", inputs: ["x"], outputs: ["sx"]), Node(name: "sw", opType: "Shape", inputs: ["w"], outputs: ["sw"])]
        let dx = Node(name: "dx", opType: "ConvGradInput", domain: "kerf.training", inputs: ["dy", "w", "sx"], outputs: ["dx"], attributes: attributes)
        let dw = Node(name: "dw", opType: "ConvGradWeight", domain: "kerf.training", inputs: ["dy", "x", "sw"], outputs: ["dw", "db"],
                      attributes: attributes)
        func input(_ name: String, _ shape: [Int]) -> ValueInfo { ValueInfo(name: name, type: .tensor(dtype: .float, shape: shape.map { .value($0) })) }
        let inputs = [input("x", [n, c, size, size]), input("w", [c, c, 3, 3]), input("dy", [n, c, size, size])]
        func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1) }) }
        let feeds = ["x": random([n, c, size, size]), "w": random([c, c, 3, 3]), "dy": random([n, c, size, size])]
        for (what, nodes, outputs) in [("forward (fed W)", [conv], ["y"]), ("dX", shapes + [dx], ["dx"]), ("dW + dB", shapes + [dw], ["dw", "db"]),
                                       ("dX + dW + dB", shapes + [dx, dw], ["dx", "dw", "db"])] {
            let used = Set(nodes.flatMap(\.inputs))
            let graph = Graph(nodes: nodes, inputs: inputs.filter { used.contains($0.name) }, outputs: outputs.map { ValueInfo(name: $0, type: nil) })
            let model = Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17), OpsetImport(domain: "kerf.training", version: 1)])
            let session = try Session(model: model, options: SessionOptions(threads: threads, optimizationLevel: 0))
            let fed = feeds.filter { used.contains($0.key) }
            _ = try session.run(fed)
            if env["KERF_BENCH_PROFILE"] != nil { session.startProfiling() }
            var best = Double.infinity
            for _ in 0..<5 {
                let start = Date()
                _ = try session.run(fed)
                best = min(best, Date().timeIntervalSince(start))
            }
            if env["KERF_BENCH_PROFILE"] != nil { print(session.profile()) }
            print(String(format: "Conv %@ N=%d C=%d %dx%d 3x3, %d threads: %.1f ms", what, n, c, size, size, threads, best * 1000))
        }
    }
}
