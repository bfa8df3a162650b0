import KerfCore

/// A training loss on named model outputs and fed targets, as PyTorch's loss modules compute
/// it. A loss is a weighted sum of terms; each term reduces to a scalar by `reduction`.
public struct Loss: Sendable {
    public enum Reduction: String, Sendable { case mean, sum }

    public enum Term: Sendable {
        /// Cross-entropy of `output` (class axis 1) against `labels`: integer class indices
        /// (shape of output without axis 1) or float class probabilities (output's shape),
        /// decided by the labels' dtype when fed. `fromProbabilities`: the output is already
        /// softmax probabilities (its log is taken) rather than logits. Label smoothing ε mixes
        /// the targets with the uniform distribution as torch.nn.CrossEntropyLoss does.
        case crossEntropy(output: String, labels: String, fromProbabilities: Bool, labelSmoothing: Double)
        /// Mean (or summed) squared error, over all elements.
        case meanSquaredError(output: String, target: String)
        /// Mean (or summed) absolute error.
        case l1(output: String, target: String)
        /// torch.nn.HuberLoss: 0.5·d² where |d| < delta, delta·(|d| − 0.5·delta) elsewhere.
        case huber(output: String, target: String, delta: Double)
        /// torch.nn.BCEWithLogitsLoss: the output is logits, the target probabilities in [0, 1].
        case binaryCrossEntropyWithLogits(output: String, target: String)
        /// Knowledge distillation (Hinton et al.): T²·KL(softmax(teacher/T) ‖ softmax(output/T))
        /// over the class axis 1, both `output` and the fed `teacher` logits of one shape; per
        /// sample as torch's `kl_div(..., reduction="batchmean")` for [batch, classes] outputs.
        case distillation(output: String, teacher: String, temperature: Double)
        /// 1 − cosine similarity of `output` and `target` along their last axis, per row
        /// (torch.nn.functional.cosine_similarity; each norm is sqrt(Σx² + 1e-16), torch's max(‖x‖, 1e-8)
        /// wherever the norm is not tiny).
        case cosineDistance(output: String, target: String)
        /// Attention-distribution matching (MiniLM): KL(softmax(teacher) ‖ softmax(output)) over
        /// the last axis of two logits tensors of one shape (attention scores [batch, heads,
        /// queries, keys] before their Softmax), averaged over every other position.
        case attentionDistillation(output: String, teacher: String)

        /// The model output the term reads.
        public var output: String {
            switch self {
            case .crossEntropy(let o, _, _, _), .meanSquaredError(let o, _), .l1(let o, _), .huber(let o, _, _),
                 .binaryCrossEntropyWithLogits(let o, _), .distillation(let o, _, _), .cosineDistance(let o, _),
                 .attentionDistillation(let o, _): return o
            }
        }

        /// The feed that holds the labels or targets.
        public var target: String {
            switch self {
            case .crossEntropy(_, let t, _, _), .meanSquaredError(_, let t), .l1(_, let t), .huber(_, let t, _),
                 .binaryCrossEntropyWithLogits(_, let t), .distillation(_, let t, _), .cosineDistance(_, let t),
                 .attentionDistillation(_, let t): return t
            }
        }

        /// (scores, reference) for terms whose top-1 agreement is an accuracy: cross-entropy
        /// against its labels, distillation against the teacher's scores.
        var classification: (output: String, reference: String)? {
            switch self {
            case .crossEntropy(let o, let labels, _, _): return (o, labels)
            case .distillation(let o, let teacher, _): return (o, teacher)
            default: return nil
            }
        }
    }

    public var terms: [(weight: Double, term: Term)]
    public var reduction: Reduction

    public init(_ term: Term, reduction: Reduction = .mean) {
        terms = [(1, term)]
        self.reduction = reduction
    }

    public init(terms: [(weight: Double, term: Term)], reduction: Reduction = .mean) {
        self.terms = terms
        self.reduction = reduction
    }

    /// The feeds the loss reads besides the model's inputs (labels, targets), in order, once each.
    public var targetNames: [String] {
        var seen = Set<String>()
        return terms.map(\.term.target).filter { seen.insert($0).inserted }
    }

    /// Checks the loss against a model's outputs and inputs before anything is built.
    func validate(outputs: Set<String>, values: Set<String>, inputs: Set<String>) throws {
        guard !terms.isEmpty else { throw KerfError.invalidArgument("the loss has no terms") }
        for (weight, term) in terms {
            guard weight.isFinite else { throw KerfError.invalidArgument("loss weight \(weight) is not finite") }
            guard values.contains(term.output) else {
                throw KerfError.invalidArgument("the loss reads output '\(term.output)', which the model does not have (outputs: \(outputs.sorted().joined(separator: ", ")))")
            }
            guard !values.contains(term.target) || inputs.contains(term.target) else {
                throw KerfError.invalidArgument("the loss's target '\(term.target)' names a value of the model, not a feed")
            }
            if case .crossEntropy(_, _, _, let e) = term, !(e >= 0 && e <= 1) {
                throw KerfError.invalidArgument("label smoothing \(e) is not in [0, 1]")
            }
            if case .distillation(_, _, let temperature) = term, !(temperature > 0 && temperature.isFinite) {
                throw KerfError.invalidArgument("distillation temperature \(temperature) must be positive")
            }
            if case .huber(_, _, let delta) = term, !(delta > 0) {
                throw KerfError.invalidArgument("Huber delta \(delta) must be positive")
            }
        }
    }
}
