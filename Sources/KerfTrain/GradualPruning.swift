import KerfCore
#if canImport(Glibc)
import Glibc
#endif

/// Gradual magnitude pruning inside training (Zhu & Gupta, "To prune, or not to prune", 2017):
/// after update t0, t0 + Δt, …, up to t_end, each weight (MatMul/Gemm B, Conv W) is pruned to
///
///     s_t = s_f + (s_i − s_f)·(1 − (t − t0)/(t_end − t0))³
///
/// of its elements, by magnitude or by movement, and its zeros are kept between pruning steps
/// (gradient masked before each update, zeros restored after it). Steps count optimizer updates.
public struct GradualPruning: Sendable, Equatable {
    /// Which elements a pruning step removes.
    public enum Criterion: String, Sendable {
        /// The smallest |w|.
        case magnitude
        /// The smallest movement score S = −Σ_t g_t·w_t over the updates so far (Sanh et al.,
        /// "Movement pruning", 2020, hard variant): weights moving towards zero go first.
        case movement
    }

    /// s_f: each weight's sparsity from `endStep` on.
    public var finalSparsity: Double
    /// s_i: the sparsity of the first pruning step, at `startStep`.
    public var initialSparsity: Double
    public var startStep: Int
    /// t_end; nil: three quarters of the run, when the training loop knows its length.
    public var endStep: Int?
    /// Δt, updates between pruning steps; nil: a tenth of (t_end − t0), at least 1.
    public var frequency: Int?
    public var criterion: Criterion

    public init(finalSparsity: Double, initialSparsity: Double = 0, startStep: Int = 0, endStep: Int? = nil, frequency: Int? = nil,
                criterion: Criterion = .magnitude) {
        self.criterion = criterion
        self.finalSparsity = finalSparsity
        self.initialSparsity = initialSparsity
        self.startStep = startStep
        self.endStep = endStep
        self.frequency = frequency
    }

    func validate() throws {
        guard initialSparsity >= 0, initialSparsity <= finalSparsity, finalSparsity < 1 else {
            throw KerfError.invalidArgument("gradual pruning needs 0 <= initial sparsity (\(initialSparsity)) <= final sparsity (\(finalSparsity)) < 1")
        }
        guard startStep >= 0 else { throw KerfError.invalidArgument("gradual pruning's start step \(startStep) is negative") }
        if let end = endStep, end < startStep {
            throw KerfError.invalidArgument("gradual pruning's end step \(end) is before its start step \(startStep)")
        }
        if let f = frequency, f < 1 { throw KerfError.invalidArgument("gradual pruning's frequency \(f) must be at least 1") }
    }

    /// This schedule with `endStep` resolved for a run of `plannedSteps` updates.
    func resolved(plannedSteps: Int?) throws -> GradualPruning {
        var r = self
        if r.endStep == nil {
            guard let planned = plannedSteps else {
                throw KerfError.invalidArgument("gradual pruning needs an end step when the run's length is not known in advance")
            }
            r.endStep = max(startStep, planned * 3 / 4)
        }
        return r
    }

    /// The sparsity to prune every weight to after `updates` optimizer updates, or nil when no
    /// pruning step falls there. `endStep` must be resolved.
    public func sparsity(afterUpdates updates: Int) -> Double? {
        guard let end = endStep, updates >= startStep, updates <= end else { return nil }
        let span = end - startStep, offset = updates - startStep
        let every = frequency ?? max(1, span / 10)
        guard offset % every == 0 || updates == end else { return nil }
        let remaining = span == 0 ? 0 : 1 - Double(offset) / Double(span)
        return finalSparsity + (initialSparsity - finalSparsity) * pow(remaining, 3)
    }
}

/// Sets the `(sparsity · count).rounded()` elements of `t` (float32) with the smallest magnitude,
/// or the smallest `scores` when given, to zero (elements already zero go first, ties broken by
/// position) and returns the 0/1 mask of the others.
func pruneToSparsity(_ t: Tensor, _ sparsity: Double, scores: [Float]? = nil) -> [Float] {
    let n = t.count
    let k = min(n, max(0, Int((sparsity * Double(n)).rounded())))
    let p = t.storage.pointer.assumingMemoryBound(to: Float.self)
    let order: [Int]
    if let scores, scores.count == n {
        order = (0..<n).sorted { a, b in
            let za = p[a] == 0, zb = p[b] == 0
            if za != zb { return za }
            return scores[a] < scores[b] || (scores[a] == scores[b] && a < b)
        }
    } else {
        order = (0..<n).sorted { a, b in
            let x = abs(p[a]), y = abs(p[b])
            return x < y || (x == y && a < b)
        }
    }
    var mask = [Float](repeating: 1, count: n)
    for i in order.prefix(k) {
        mask[i] = 0
        p[i] = 0
    }
    return mask
}
