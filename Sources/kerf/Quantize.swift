import ArgumentParser
import KerfCompress
import FoundationEssentials
import KerfCore

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a model's weights (and activations) to int8.",
        discussion: """
            dynamic stores MatMul/Gemm weights as int8 and quantizes activations at run time \
            (no data needed); static inserts QuantizeLinear/DequantizeLinear with activation ranges \
            calibrated on DATA.npz (one array per model input, samples along the first axis) and also \
            quantizes Conv. Without -o the model is rewritten in place, atomically.
            """)

    @Argument(help: "The ONNX model file.") var model: String
    @Option(name: .shortAndLong, help: "Where to write the quantized model (default: rewrite MODEL in place).") var output: String?
    @Option(help: "dynamic or static.") var mode: String = "dynamic"
    @Option(help: "An .npz file of calibration inputs (required by static mode and --auto-tolerance).") var calibration: String?
    @Option(help: "An .npz file of inputs to measure agreement with the float model on (default: the calibration data).") var validation: String?
    @Option(help: "Static calibration: minmax, percentile or entropy.") var method: String = "minmax"
    @Option(help: "Percentile of |x| kept by --method percentile.") var percentile: Double = 99.99
    @Option(help: "Quantized activation type: uint8 (U8S8, fastest on x86) or int8 (S8S8).") var activationType: String = "uint8"
    @Flag(inversion: .prefixedNo, help: "One weight scale per output channel (else per tensor).") var perChannel = true
    @Option(parsing: .upToNextOption, help: "Op types to quantize (default Conv MatMul Gemm).") var opTypes: [String] = []
    @Option(parsing: .upToNextOption, help: "Weight names, node names or op types to keep in float.") var exclude: [String] = []
    @Option(help: "Keep the worst-SQNR nodes in float until the outputs' relative error is at most this.") var autoTolerance: Double?
    @Option(help: "Apply SmoothQuant with this alpha in [0, 1] first (transformers).") var smoothQuant: Double?
    @Flag(inversion: .prefixedNo, help: "Store constant Gather tables (embeddings) as int8 always / never (default: where a table's int8 SQNR is at least 30 dB).")
    var embeddings: Bool?
    @Option(help: "Samples per calibration batch when the model's batch is not fixed.") var batchSize: Int = 32
    @Option(help: "Intra-op threads of calibration runs (0 = one per core).") var threads: Int = 0
    @Option(help: "Also write the report as JSON to this file.") var report: String?
    @Option(help: "Also draw each quantized node's SQNR (measured on the calibration data) as an SVG bar chart.") var plot: String?

    func run() throws {
        try checkPlotPath(plot)
        if plot != nil && calibration == nil {
            throw KerfError.invalidArgument("--plot draws each node's SQNR, measured on the --calibration data: give --calibration")
        }
        var o = try quantizeOptions(mode: mode, modeFlag: "--mode", activationType: activationType)
        switch method {
        case "minmax": o.method = .minMax
        case "percentile": o.method = .percentile(percentile)
        case "entropy": o.method = .entropy
        default: throw KerfError.invalidArgument("--method must be minmax, percentile or entropy, got '\(method)'")
        }
        o.perChannel = perChannel
        if !opTypes.isEmpty { o.opTypes = Set(opTypes) }
        o.exclude = NameFilter(exclude)
        o.autoTolerance = autoTolerance
        o.smoothQuantAlpha = smoothQuant
        o.quantizeEmbeddings = embeddings
        o.session.threads = threads
        let loaded = try Model.load(path: model)
        func batches(_ path: String) throws -> ArrayCalibration {
            let arrays = Dictionary(try NumpyFile.readArchive(path: path).map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
            return try ArrayCalibration(arrays.filter { $0.key != "labels" }, graph: loaded.graph, batchSize: batchSize)
        }
        let data = try calibration.map(batches), checks = try validation.map(batches)
        let bar = ProgressBar("quantize")
        let result = try quantize(loaded, options: o, calibration: data, validation: checks, progress: bar.update)
        let destination = output ?? model
        try loaded.save(path: destination)
        if let report { try FileIO.writeAtomically(Data(try result.json().utf8), to: report) }
        if let plot {
            let bars = result.nodes.compactMap { n in n.sqnrDb.map { (name: n.name.isEmpty ? n.weight : n.name, value: $0) } }
            try FileIO.writeAtomically(Data(barChartSVG(title: "SQNR of each int8 node (\(result.mode))",
                                                         valueLabel: "SQNR of the node's output against float (dB)", bars: bars).utf8), to: plot)
        }
        print(summary(result))
        print("wrote \(destination)")
    }
}

/// Options of mode `mode` (named by `modeFlag` in messages) and activation type `activationType`.
func quantizeOptions(mode: String, modeFlag: String, activationType: String) throws -> QuantizeOptions {
    var o = QuantizeOptions()
    guard let m = QuantizationMode(rawValue: mode) else { throw KerfError.invalidArgument("\(modeFlag) must be dynamic or static, got '\(mode)'") }
    guard let a = ActivationType(rawValue: activationType) else {
        throw KerfError.invalidArgument("--activation-type must be uint8 or int8, got '\(activationType)'")
    }
    o.mode = m
    o.activationType = a
    return o
}

/// The report as a table for a terminal.
func summary(_ r: QuantizeReport) -> String {
    var lines = ["\(r.mode) int8 quantization" + (r.mode == "static" ? ", \(r.method) calibration, \(r.activationType) activations" : "")
                 + (r.perChannel ? ", per-channel weights" : ", per-tensor weights")]
    let nameWidth = min(40, r.nodes.map(\.name.count).max() ?? 4)
    for n in r.nodes {
        let scales = n.weightScales == 1 ? "scale \(decimal(Double(n.weightScaleMin), places: 6))"
            : "\(n.weightScales) scales \(decimal(Double(n.weightScaleMin), places: 6))..\(decimal(Double(n.weightScaleMax), places: 6))"
        lines.append("  \(n.name.padding(to: nameWidth)) \(n.opType.padding(to: 7)) \(scales.padding(to: 34))"
                     + (n.sqnrDb.map { " SQNR \(decimal($0, places: 1)) dB" } ?? ""))
    }
    for f in r.float { lines.append("  float \(f.name): \(f.reason)") }
    if !r.embeddings.isEmpty { lines.append("  int8 tables: \(r.embeddings.joined(separator: ", "))") }
    if !r.smoothed.isEmpty { lines.append("  SmoothQuant rescaled: \(r.smoothed.joined(separator: ", "))") }
    var size = "bytes \(r.bytesBefore) -> \(r.bytesAfter) (\(percent(r.sizeRatio)))"
    if r.opsetAfter != r.opsetBefore { size += "; opset \(r.opsetBefore) -> \(r.opsetAfter)" }
    lines.append(size)
    if let a = r.agreement {
        lines.append("against float on \(a.samples) \(a.data) samples: " + (a.top1Agreement.map { "top-1 agreement \(percent($0)), " } ?? "")
                     + "cosine \(decimal(a.cosine, places: 5)), max abs error \(decimal(a.maxAbsError, places: 5)), SQNR \(decimal(a.sqnrDb, places: 1)) dB")
    }
    return lines.joined(separator: "\n")
}
