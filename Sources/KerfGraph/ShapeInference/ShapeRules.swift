/// The shape rules by operator type (default ONNX domain), one family per file.
enum ShapeRules {
    static let table: [String: ShapeRule] = {
        var t: [String: ShapeRule] = [:]
        for family in [elementwise, broadcasting, linear, convolution, normalization, reduction, layout,
                       joining, indexing, constants, quantization, resizing, generators, attention, recurrent] {
            t.merge(family) { first, _ in first }
        }
        return t
    }()

    /// `rule` registered under each of `ops`.
    static func each(_ ops: [String], _ rule: @escaping ShapeRule) -> [String: ShapeRule] {
        Dictionary(uniqueKeysWithValues: ops.map { ($0, rule) })
    }
}
