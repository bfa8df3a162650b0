/// Charts written as standalone SVG documents, for the CLI's `--plot FILE.svg` options: line
/// charts (one polyline per series, a second y axis on the right if asked) and horizontal bar
/// charts. Every point and bar carries a `<title>` with its exact value, which viewers show on
/// hover. Coordinates are in pixels, y growing downwards; values that are not finite are left out
/// and magnitudes are capped at 1e15.

import KerfCore
#if canImport(Glibc)
import Glibc
#endif

/// Values drawn are clamped to ±this, so that axis arithmetic and text stay finite.
private let largestDrawn = 1e15

private func drawable(_ v: Double) -> Double { min(max(v, -largestDrawn), largestDrawn) }

/// One line of a line chart. `points` are (x, y) in data units.
struct ChartSeries {
    var name: String
    var points: [(x: Double, y: Double)]
    /// Drawn against the right-hand axis (e.g. accuracy beside losses).
    var rightAxis = false
    var dashed = false
}

/// A horizontal guide line across the plot (e.g. the unpruned model's accuracy).
struct ChartGuide {
    var label: String
    var y: Double
}

/// A value axis: its data range, rounded outwards to "nice" tick steps (1, 2 or 5 × 10^k).
struct ChartAxis {
    let low: Double
    let high: Double
    let ticks: [Double]

    init(_ values: [Double], includingZero: Bool = false) {
        let finite = values.filter(\.isFinite).map(drawable)
        var lo = finite.min() ?? 0, hi = finite.max() ?? 1
        if includingZero { lo = min(lo, 0); hi = max(hi, 0) }
        if hi - lo < 1e-12 { lo -= 0.5; hi += 0.5 }
        let rough = (hi - lo) / 5
        let magnitude = pow(10, log10(rough).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? 10 * magnitude
        let first = (lo / step).rounded(.down) * step, last = (hi / step).rounded(.up) * step
        let count = Int(((last - first) / step).rounded())
        low = first
        high = last
        ticks = (0...count).map { first + Double($0) * step }
    }

    /// `value`'s position between `start` (at low) and `end` (at high).
    func position(_ value: Double, from start: Double, to end: Double) -> Double {
        start + (drawable(value) - low) / (high - low) * (end - start)
    }
}

/// Tick and tooltip text: up to 4 significant decimals, no trailing zeros.
func chartNumber(_ x: Double) -> String {
    guard x.isFinite, abs(x) < largestDrawn else { return String(x) }
    let magnitude = abs(x)
    let places = magnitude >= 100 ? 1 : magnitude >= 1 ? 3 : 4
    var text = decimal(x, places: places)
    if text.contains(".") {
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
    }
    return text == "-0" ? "0" : text
}

/// `text` with XML's special characters escaped.
func xmlEscaped(_ text: String) -> String {
    var out = ""
    for c in text {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}

/// Ten distinguishable colours (matplotlib's tab10), reused in turn.
private let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

private func px(_ v: Double) -> String { v.isFinite ? decimal(v, places: 1) : "0" }

/// An SVG document under construction: elements appended in drawing order.
private struct SVGCanvas {
    let width: Double, height: Double
    var body: [String] = []

    mutating func text(_ s: String, x: Double, y: Double, anchor: String = "start", size: Int = 12, rotate: Bool = false, bold: Bool = false) {
        let transform = rotate ? " transform=\"rotate(-90 \(px(x)) \(px(y)))\"" : ""
        body.append("<text x=\"\(px(x))\" y=\"\(px(y))\" text-anchor=\"\(anchor)\" font-size=\"\(size)\"\(bold ? " font-weight=\"bold\"" : "")\(transform)>\(xmlEscaped(s))</text>")
    }

    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, color: String = "#000", width: Double = 1, dashed: Bool = false) {
        body.append("<line x1=\"\(px(x1))\" y1=\"\(px(y1))\" x2=\"\(px(x2))\" y2=\"\(px(y2))\" stroke=\"\(color)\" stroke-width=\"\(px(width))\""
                    + (dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>")
    }

    var document: String {
        (["<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(px(width))\" height=\"\(px(height))\" viewBox=\"0 0 \(px(width)) \(px(height))\" font-family=\"sans-serif\">",
          "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"] + body + ["</svg>", ""]).joined(separator: "\n")
    }
}

/// Legend entries are cut to this many characters (the full name stays in the tooltips).
private let legendCharacters = 40

/// A line chart of `series` (and `guides`) as an SVG document. `xText` formats x ticks.
func lineChartSVG(title: String, xLabel: String, yLabel: String, rightLabel: String? = nil,
                  series: [ChartSeries], guides: [ChartGuide] = [], xText: (Double) -> String = chartNumber) -> String {
    let finite = series.map { s in ChartSeries(name: s.name, points: s.points.filter { $0.x.isFinite && $0.y.isFinite },
                                               rightAxis: s.rightAxis, dashed: s.dashed) }
    let xAxis = ChartAxis(finite.flatMap { $0.points.map(\.x) })
    let left = ChartAxis(finite.filter { !$0.rightAxis }.flatMap { $0.points.map(\.y) } + guides.map(\.y).filter(\.isFinite))
    let hasRight = finite.contains(where: \.rightAxis)
    let right = ChartAxis(finite.filter(\.rightAxis).flatMap { $0.points.map(\.y) })
    let guideTexts = guides.map { "\($0.label) (\(chartNumber($0.y)))" }
    let longest = min(legendCharacters, (finite.map(\.name.count) + guideTexts.map(\.count)).max() ?? 0)
    let legendWidth = Double(40 + 7 * longest)
    let plotLeft = 70.0, plotTop = 40.0, plotWidth = 560.0, plotHeight = 340.0
    let plotRight = plotLeft + plotWidth, plotBottom = plotTop + plotHeight
    let legendLeft = plotRight + (hasRight ? 70 : 20)
    let legendHeight = 40 + 18 * Double(finite.count + guides.count)
    var c = SVGCanvas(width: legendLeft + legendWidth, height: max(plotBottom + 50, legendHeight))
    c.text(title, x: plotLeft + plotWidth / 2, y: 24, anchor: "middle", size: 15, bold: true)

    func xp(_ x: Double) -> Double { xAxis.position(x, from: plotLeft, to: plotRight) }
    func yp(_ y: Double, _ onRight: Bool) -> Double { (onRight ? right : left).position(y, from: plotBottom, to: plotTop) }

    for t in xAxis.ticks {
        c.line(xp(t), plotTop, xp(t), plotBottom, color: "#e5e5e5")
        c.text(xText(t), x: xp(t), y: plotBottom + 18, anchor: "middle")
    }
    for t in left.ticks {
        c.line(plotLeft, yp(t, false), plotRight, yp(t, false), color: "#e5e5e5")
        c.text(chartNumber(t), x: plotLeft - 6, y: yp(t, false) + 4, anchor: "end")
    }
    if hasRight {
        for t in right.ticks { c.text(chartNumber(t), x: plotRight + 6, y: yp(t, true) + 4) }
        c.line(plotRight, plotTop, plotRight, plotBottom)
        if let rightLabel { c.text(rightLabel, x: plotRight + 58, y: plotTop + plotHeight / 2, anchor: "middle", size: 13, rotate: true) }
    }
    c.line(plotLeft, plotBottom, plotRight, plotBottom)
    c.line(plotLeft, plotTop, plotLeft, plotBottom)
    c.text(xLabel, x: plotLeft + plotWidth / 2, y: plotBottom + 40, anchor: "middle", size: 13)
    c.text(yLabel, x: 18, y: plotTop + plotHeight / 2, anchor: "middle", size: 13, rotate: true)

    var legendY = plotTop + 10
    for (guide, text) in zip(guides, guideTexts) where guide.y.isFinite {
        c.line(plotLeft, yp(guide.y, false), plotRight, yp(guide.y, false), color: "#555", width: 1.5, dashed: true)
        c.line(legendLeft, legendY - 4, legendLeft + 24, legendY - 4, color: "#555", width: 1.5, dashed: true)
        c.text(text, x: legendLeft + 30, y: legendY, size: 11)
        legendY += 18
    }
    for (i, s) in finite.enumerated() {
        let color = palette[i % palette.count]
        let points = s.points.map { "\(px(xp($0.x))),\(px(yp($0.y, s.rightAxis)))" }.joined(separator: " ")
        c.body.append("<g class=\"series\" data-name=\"\(xmlEscaped(s.name))\">")
        c.body.append("<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"" + (s.dashed ? " stroke-dasharray=\"6 4\"" : "")
                      + " points=\"\(points)\"/>")
        for p in s.points {
            c.body.append("<circle cx=\"\(px(xp(p.x)))\" cy=\"\(px(yp(p.y, s.rightAxis)))\" r=\"3\" fill=\"\(color)\">"
                          + "<title>\(xmlEscaped(s.name)) \(xmlEscaped(xText(p.x))): \(chartNumber(p.y))</title></circle>")
        }
        c.body.append("</g>")
        c.line(legendLeft, legendY - 4, legendLeft + 24, legendY - 4, color: color, width: 2, dashed: s.dashed)
        let name = s.name.count > legendCharacters ? String(s.name.prefix(legendCharacters - 1)) + "…" : s.name
        c.text(name, x: legendLeft + 30, y: legendY, size: 11)
        legendY += 18
    }
    return c.document
}

/// A horizontal bar chart, one bar per entry in the given order (top to bottom), as an SVG
/// document. Bars start at 0; negative values extend left of it.
func barChartSVG(title: String, valueLabel: String, bars: [(name: String, value: Double)]) -> String {
    let shown = bars.filter { $0.value.isFinite }
    let axis = ChartAxis(shown.map(\.value), includingZero: true)
    let longest = min(legendCharacters, shown.map(\.name.count).max() ?? 0)
    let plotLeft = Double(20 + 7 * longest), plotTop = 40.0, plotWidth = 520.0, barHeight = 18.0, gap = 6.0
    let plotHeight = max(barHeight, Double(shown.count) * (barHeight + gap))
    let plotRight = plotLeft + plotWidth, plotBottom = plotTop + plotHeight
    var c = SVGCanvas(width: plotRight + 30, height: plotBottom + 50)
    c.text(title, x: plotLeft + plotWidth / 2, y: 24, anchor: "middle", size: 15, bold: true)
    func xp(_ x: Double) -> Double { axis.position(x, from: plotLeft, to: plotRight) }
    for t in axis.ticks {
        c.line(xp(t), plotTop, xp(t), plotBottom, color: "#e5e5e5")
        c.text(chartNumber(t), x: xp(t), y: plotBottom + 18, anchor: "middle")
    }
    for (i, bar) in shown.enumerated() {
        let y = plotTop + Double(i) * (barHeight + gap) + gap / 2
        let x0 = xp(0), x1 = xp(bar.value)
        c.body.append("<rect class=\"bar\" data-name=\"\(xmlEscaped(bar.name))\" x=\"\(px(min(x0, x1)))\" y=\"\(px(y))\" width=\"\(px(abs(x1 - x0)))\" "
                      + "height=\"\(px(barHeight))\" fill=\"\(palette[0])\"><title>\(xmlEscaped(bar.name)): \(chartNumber(bar.value))</title></rect>")
        let name = bar.name.count > legendCharacters ? String(bar.name.prefix(legendCharacters - 1)) + "…" : bar.name
        c.text(name, x: plotLeft - 6, y: y + barHeight - 5, anchor: "end", size: 11)
    }
    c.line(xp(0), plotTop, xp(0), plotBottom)
    c.line(plotLeft, plotBottom, plotRight, plotBottom)
    c.text(valueLabel, x: plotLeft + plotWidth / 2, y: plotBottom + 40, anchor: "middle", size: 13)
    return c.document
}

/// Throws unless `path` names an .svg file: `--plot` writes SVG only.
func checkPlotPath(_ path: String?) throws {
    guard let path else { return }
    guard path.lowercased().hasSuffix(".svg") else {
        throw KerfError.invalidArgument("--plot writes SVG: give a file name ending in .svg, got '\(path)'")
    }
}
