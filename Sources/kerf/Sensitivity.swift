import ArgumentParser
import KerfCompress
import FoundationEssentials
import KerfCore

struct Sensitivity: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prune each weight alone at several levels and measure how much the outputs change.",
        discussion: "DATA.npz holds one array per model input (samples along the first axis) and optionally integer labels.")

    @Argument(help: "The ONNX model file.") var model: String
    @Option(help: "An .npz file with the model inputs (and labels).") var data: String
    @Option(help: "Comma-separated sparsity levels.") var levels: String = "0.5,0.7,0.9"
    @Option(help: "Name of the labels array in DATA.npz.") var labels: String = "labels"
    @Option(parsing: .upToNextOption, help: "Weight names, node names or op types to leave out.") var exclude: [String] = []
    @Option(help: "Intra-op threads (0 = one per core).") var threads: Int = 0
    @Option(help: "Also write the table as JSON to this file.") var json: String?
    @Option(help: "Also draw the table as an SVG chart: accuracy (with labels) or relative error against sparsity, one line per weight.")
    var plot: String?

    func run() throws {
        try checkPlotPath(plot)
        var o = SensitivityOptions()
        o.levels = try levels.split(separator: ",").map {
            guard let v = Double($0.filter { $0 != " " }) else {
                throw KerfError.invalidArgument("--levels must be comma-separated numbers, got '\(levels)'")
            }
            return v
        }
        o.exclude = NameFilter(exclude)
        o.session.threads = threads
        let m = try Model.load(path: model)
        var arrays = Dictionary(try NumpyFile.readArchive(path: data).map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        let labelTensor = arrays.removeValue(forKey: labels)
        let bar = ProgressBar("sensitivity")
        let table = try sensitivity(m, data: arrays, labels: labelTensor, options: o, progress: bar.update)
        if let json { try FileIO.writeAtomically(Data(try table.json().utf8), to: json) }
        if let plot { try FileIO.writeAtomically(Data(chart(table).utf8), to: plot) }
        print(format(table))
    }

    private func format(_ t: SensitivityTable) -> String {
        var lines = ["\(t.samples) samples" + (t.baselineAccuracy.map { ", unpruned accuracy \(percent($0))" } ?? "")]
        lines.append("  " + "weight".padding(to: 32) + " " + "level".padding(to: 6) + " " + "rel.error".padding(to: 10) + " " + "cosine".padding(to: 8)
                     + (t.baselineAccuracy == nil ? "" : " accuracy"))
        for r in t.rows {
            lines.append("  " + r.tensor.padding(to: 32) + " " + percent(r.level).padding(to: 6) + " " + decimal(r.relativeError, places: 4).padding(to: 10) + " "
                         + decimal(r.cosine, places: 4).padding(to: 8) + (r.accuracy.map { " " + percent($0) } ?? ""))
        }
        return lines.joined(separator: "\n")
    }

    /// Accuracy (when the table has labels) or relative error against sparsity, a line per
    /// weight in table order; the unpruned accuracy as a guide.
    private func chart(_ t: SensitivityTable) -> String {
        let byAccuracy = t.baselineAccuracy != nil
        var order: [String] = [], points: [String: [(x: Double, y: Double)]] = [:]
        for r in t.rows {
            if points[r.tensor] == nil { order.append(r.tensor) }
            points[r.tensor, default: []].append((r.level, byAccuracy ? r.accuracy ?? .nan : r.relativeError))
        }
        return lineChartSVG(title: "Sensitivity to pruning (\(t.samples) samples)", xLabel: "sparsity of the weight",
                            yLabel: byAccuracy ? "accuracy" : "relative error of the outputs",
                            series: order.map { ChartSeries(name: $0, points: points[$0]!) },
                            guides: t.baselineAccuracy.map { [ChartGuide(label: "unpruned", y: $0)] } ?? [], xText: { chartNumber($0 * 100) + "%" })
    }
}
