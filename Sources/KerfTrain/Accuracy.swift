import KerfCore

/// How many samples of `output` (classes on axis 1) have their top-1 class equal to the label:
/// `labels` holds class indices (int32/int64, output's shape without axis 1) or class
/// probabilities (float, output's shape; the label is their argmax).
func correctPredictions(_ output: Tensor, labels: Tensor) throws -> Int {
    guard output.rank >= 2, output.dtype == .float || output.dtype == .double else {
        throw KerfError.shapeMismatch("accuracy needs float scores with classes on axis 1, got \(output.dtype) \(output.shape)")
    }
    let classes = output.shape[1], outer = output.shape[0], inner = output.shape[2...].reduce(1, *)
    let predicted = argmaxAxis1(output, outer: outer, classes: classes, inner: inner)
    let truth: [Int]
    switch labels.dtype {
    case .int64, .int32:
        guard labels.count == outer * inner else {
            throw KerfError.shapeMismatch("labels \(labels.shape) do not match the output \(output.shape) without its class axis")
        }
        truth = labels.dtype == .int64 ? labels.array(of: Int64.self).map { Int($0) } : labels.array(of: Int32.self).map { Int($0) }
    case .float, .double:
        guard labels.shape == output.shape else {
            throw KerfError.shapeMismatch("class probabilities \(labels.shape) do not match the output \(output.shape)")
        }
        truth = argmaxAxis1(labels, outer: outer, classes: classes, inner: inner)
    default:
        throw KerfError.invalidArgument("labels of \(labels.dtype) (int64, int32 or float)")
    }
    return zip(predicted, truth).filter { $0 == $1 }.count
}

private func argmaxAxis1(_ t: Tensor, outer: Int, classes: Int, inner: Int) -> [Int] {
    let values = t.dtype == .double ? t.array(of: Double.self) : t.array(of: Float.self).map(Double.init)
    var out: [Int] = []
    out.reserveCapacity(outer * inner)
    for o in 0..<outer {
        for i in 0..<inner {
            var best = 0, bestValue = -Double.infinity
            for c in 0..<classes {
                let v = values[(o * classes + c) * inner + i]
                if v > bestValue { best = c; bestValue = v }
            }
            out.append(best)
        }
    }
    return out
}
