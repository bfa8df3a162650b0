import KerfCore
import KerfKernels

/// Which of ONNX's recurrent ops a node is: its gates per step and activations per direction.
enum RecurrentKind: String {
    case rnn = "RNN", gru = "GRU", lstm = "LSTM"

    /// Gates stacked in W and R: [G · hidden, ...].
    var gates: Int {
        switch self {
        case .rnn: return 1
        case .gru: return 3
        case .lstm: return 4
        }
    }

    /// `activations` defaults, one direction's worth: f (RNN); f, g (GRU); f, g, h (LSTM).
    var defaultActivations: [RecurrentActivation.Kind] {
        switch self {
        case .rnn: return [.tanh]
        case .gru: return [.sigmoid, .tanh]
        case .lstm: return [.sigmoid, .tanh, .tanh]
        }
    }
}

/// The attributes of an RNN, GRU or LSTM node, parsed and checked once per node.
struct RecurrentAttributes {
    let kind: RecurrentKind
    /// 1, or 2 for `bidirectional` (forward first).
    let directions: Int
    /// `direction` is `reverse` (a single, reverse direction).
    let reverseOnly: Bool
    /// `hidden_size`, when given (else R's last dim).
    let hiddenSize: Int?
    /// The activations of each direction (`activations`, alpha and beta consumed in order).
    let activations: [[RecurrentActivation]]
    let clip: Float?
    /// 0: X [steps, batch, input], states [directions, batch, hidden]; 1: batch first.
    let batchFirst: Bool
    /// GRU's `linear_before_reset`.
    let linearBeforeReset: Bool
    /// LSTM's `input_forget`.
    let inputForget: Bool

    init(_ c: OperatorContext, kind: RecurrentKind) throws {
        self.kind = kind
        let op = kind.rawValue
        let direction = try c.string("direction", default: "forward")
        guard ["forward", "reverse", "bidirectional"].contains(direction) else {
            throw KerfError.invalidModel("\(op): direction must be forward, reverse or bidirectional, got '\(direction)'")
        }
        directions = direction == "bidirectional" ? 2 : 1
        reverseOnly = direction == "reverse"
        hiddenSize = try c.int("hidden_size")
        if let h = hiddenSize, h < 1 { throw KerfError.invalidModel("\(op): hidden_size must be positive, got \(h)") }
        let layout = try c.int("layout", default: 0)
        guard layout == 0 || layout == 1 else { throw KerfError.invalidModel("\(op): layout must be 0 or 1, got \(layout)") }
        batchFirst = layout == 1
        if c.has("clip") {
            let clip = try c.float("clip", default: 0)
            guard clip > 0 else { throw KerfError.invalidModel("\(op): clip must be positive, got \(clip)") }
            self.clip = clip
        } else {
            clip = nil
        }
        linearBeforeReset = try c.int("linear_before_reset", default: 0) != 0
        inputForget = try c.int("input_forget", default: 0) != 0
        activations = try Self.activations(c, kind: kind, directions: directions)
    }

    /// `activations` with `activation_alpha` / `activation_beta` handed out in order to the
    /// functions that take them (ONNX's defaults for the rest), split per direction. One
    /// direction's worth given to a bidirectional node serves both.
    private static func activations(_ c: OperatorContext, kind: RecurrentKind, directions: Int) throws -> [[RecurrentActivation]] {
        let op = kind.rawValue, perDirection = kind.defaultActivations.count
        guard let names = try c.strings("activations") else {
            return Array(repeating: kind.defaultActivations.map { RecurrentActivation($0) }, count: directions)
        }
        guard names.count == perDirection * directions || names.count == perDirection else {
            throw KerfError.invalidModel("\(op): \(names.count) activations, expected \(perDirection * directions) "
                                         + "(\(perDirection) per direction)")
        }
        var alphas = (try c.floats("activation_alpha") ?? [])[...], betas = (try c.floats("activation_beta") ?? [])[...]
        let list = try names.map { name -> RecurrentActivation in
            guard let k = RecurrentActivation.Kind(rawValue: name) else {
                throw KerfError.unsupported("\(op): unknown activation '\(name)' (supported: "
                                            + RecurrentActivation.Kind.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            let alpha = k.defaults.alpha != nil ? alphas.popFirst() : nil, beta = k.defaults.beta != nil ? betas.popFirst() : nil
            return RecurrentActivation(k, alpha: alpha, beta: beta)
        }
        return (0..<directions).map { d in names.count == perDirection ? list : Array(list[(d * perDirection)..<((d + 1) * perDirection)]) }
    }
}
