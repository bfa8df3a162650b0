import Foundation
import KerfCore
import KerfRuntime
import XCTest

/// Times training-mode BatchNormalization, MaxPool and their gradients in float (set
/// KERF_BENCH=1): x[32, 64, 56, 56] (MaxPool: [32, 64, 112, 112], 3x3 stride 2 pad 1).
final class TrainingOpsBenchmark: XCTestCase {
    func testTrainingOpsSpeed() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["KERF_BENCH"] != nil, "set KERF_BENCH=1 to time")
        let threads = 2
        func input(_ name: String, _ shape: [Int], _ dtype: DType = .float) -> ValueInfo {
            ValueInfo(name: name, type: .tensor(dtype: dtype, shape: shape.map { .value($0) }))
        }
        func random(_ shape: [Int]) -> Tensor {
            var state: UInt32 = 12345
            return Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in
                state = state &* 1_664_525 &+ 1_013_904_223
                return Float(state >> 8) / Float(1 << 23) - 1
            })
        }
        let x = [32, 64, 56, 56], big = [32, 64, 112, 112]
        let c = [64]
        let pool = [Attribute(name: "kernel_shape", value: .ints([3, 3])), Attribute(name: "strides", value: .ints([2, 2])),
                    Attribute(name: "pads", value: .ints([1, 1, 1, 1]))]
        let feeds: [String: Tensor] = ["x": random(x), "dy": random(x), "scale": random(c), "b": random(c), "m": random(c),
                                       "v": Tensor(shape: c, values: [Float](repeating: 1, count: 64)), "big": random(big)]
        let cases: [(String, [Node], [String])] = [
            ("BN training forward", [Node(name: "bn", opType: "BatchNormalizationTraining", domain: "kerf.training", inputs: ["x", "scale", "b", "m", "v"],
                                          outputs: ["y", "sm", "si", "rm", "rv"])], ["y", "sm", "si", "rm", "rv"]),
            ("BN training backward", [Node(name: "g", opType: "BatchNormalizationTrainingGrad", domain: "kerf.training", inputs: ["dy", "x", "scale", "m", "v"],
                                           outputs: ["dx", "ds", "db"])], ["dx", "ds", "db"]),
            ("MaxPool forward", [Node(name: "p", opType: "MaxPool", inputs: ["big"], outputs: ["y"], attributes: pool)], ["y"]),
            ("MaxPool backward", [Node(name: "p", opType: "MaxPoolGrad", domain: "kerf.training", inputs: ["dy", "big"], outputs: ["dx"], attributes: pool)], ["dx"]),
            ("Relu backward", [Node(name: "r", opType: "ActivationGrad", domain: "kerf.training", inputs: ["dy", "x"], outputs: ["dx"],
                                    attributes: [Attribute(name: "kind", value: .string(Data("relu".utf8)))])], ["dx"]),
        ]
        let shapes = ["x": x, "dy": x, "scale": c, "b": c, "m": c, "v": c, "big": big]
        let only = ProcessInfo.processInfo.environment["KERF_BENCH_ONLY"]
        for (what, nodes, outputs) in cases where only.map({ what.contains($0) }) ?? true {
            let used = Set(nodes.flatMap(\.inputs))
            let graph = Graph(nodes: nodes, inputs: used.sorted().map { input($0, shapes[$0]!) }, outputs: outputs.map { ValueInfo(name: $0, type: nil) })
            let model = Model(graph: graph, opsetImports: [OpsetImport(domain: "", version: 17), OpsetImport(domain: "kerf.training", version: 1)])
            let session = try Session(model: model, options: SessionOptions(threads: threads, optimizationLevel: 0))
            let fed = feeds.filter { used.contains($0.key) }
            _ = try session.run(fed)
            var best = Double.infinity
            for _ in 0..<5 {
                let start = Date()
                _ = try session.run(fed)
                best = min(best, Date().timeIntervalSince(start))
            }
            print(String(format: "%@: %.2f ms", what, best * 1000))
        }
    }
}
