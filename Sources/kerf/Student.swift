import ArgumentParser
import FoundationEssentials
import KerfCompress
import KerfCore

struct Student: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a smaller student from a teacher's own layers, for kerf distill to train.",
        discussion: """
            Removes repeated layers (found by the exporter's names: layers.N, layer.N, h.N, blocks.N), \
            every other one by default as DistilBERT's student, so the residual stream skips them; \
            --narrow also removes that fraction of every channel group (feed-forward channels, \
            attention heads) by channel pruning. The kept weights are the teacher's.
            """)

    @Argument(help: "The teacher ONNX model.") var teacher: String
    @Option(name: .shortAndLong, help: "Where to write the student.") var output: String
    @Option(help: "Layers to remove: every-other, none, or indices such as 1,3,5.") var dropLayers: String = "every-other"
    @Option(help: "Also remove this fraction in (0, 1) of every channel group.") var narrow: Double?
    @Option(help: "Also write the report as JSON to this file.") var report: String?

    func run() throws {
        var o = StudentOptions(narrow: narrow)
        switch dropLayers {
        case "every-other": o.dropLayers = .everyOther
        case "none": o.dropLayers = .none
        default:
            let indices = dropLayers.split(separator: ",").map { Int($0.filter { $0 != " " }) }
            guard !indices.isEmpty, indices.allSatisfy({ $0 != nil }) else {
                throw KerfError.invalidArgument("--drop-layers must be every-other, none or indices such as 1,3,5, got '\(dropLayers)'")
            }
            o.dropLayers = .indices(indices.map { $0! })
        }
        let model = try Model.load(path: teacher)
        let result = try makeStudent(model, options: o)
        try model.save(path: output)
        if let report { try FileIO.writeAtomically(Data(try result.json().utf8), to: report) }
        for layer in result.layers {
            print("layer \(layer.index): \(layer.nodes) nodes, \(layer.parameters) parameters\(layer.dropped ? ", removed" : "")")
        }
        if let narrowed = result.narrowed {
            print("narrowed: \(narrowed.tensors.count) weights, \(narrowed.skipped.count) skipped")
        }
        print("parameters \(result.parametersBefore) -> \(result.parametersAfter) (\(percent(Double(result.parametersAfter) / Double(max(result.parametersBefore, 1))))), "
              + "bytes \(result.bytesBefore) -> \(result.bytesAfter)")
        print("wrote \(output)")
    }
}
