import KerfCore
#if canImport(Glibc)
import Glibc
#endif

/// Fresh values for the trained parameters (training from scratch, as `torch.nn.init` does),
/// chosen by each parameter's role in the graph:
/// - weights (MatMul/Gemm B, Conv W): the chosen scheme with their fan-in and fan-out;
/// - biases (Gemm C, Conv B, or a float added to a product): zeros;
/// - LayerNormalization / BatchNormalization scale: ones, bias: zeros;
/// - embedding tables (Gather data): normal(0, 1), as torch.nn.Embedding;
/// - anything else keeps its value.
/// The same seed gives the same values on every machine.
public enum Initialization: String, Sendable, CaseIterable {
    /// U(−b, b), b = √(6 / fan_in) (torch.nn.init.kaiming_uniform_, ReLU gain).
    case kaimingUniform = "kaiming_uniform"
    /// N(0, 2 / fan_in) (kaiming_normal_, ReLU gain).
    case kaimingNormal = "kaiming_normal"
    /// U(−b, b), b = √(6 / (fan_in + fan_out)) (xavier_uniform_).
    case xavierUniform = "xavier_uniform"
    /// N(0, 2 / (fan_in + fan_out)) (xavier_normal_).
    case xavierNormal = "xavier_normal"

    /// New values for `parameters` (name → current value) of `graph`, seeded.
    func values(for parameters: [String: Tensor], in graph: Graph, seed: UInt64) throws -> [String: Tensor] {
        var random = SplitMix64(seed: seed)
        var out: [String: Tensor] = [:]
        for name in parameters.keys.sorted() {
            guard let current = parameters[name], current.dtype == .float else { continue }
            let role = ParameterRole(of: name, shape: current.shape, in: graph)
            let values: [Float]
            switch role {
            case .weight(let fanIn, let fanOut):
                values = (0..<current.count).map { _ in Float(sample(fanIn: fanIn, fanOut: fanOut, &random)) }
            case .zeros: values = [Float](repeating: 0, count: current.count)
            case .ones: values = [Float](repeating: 1, count: current.count)
            case .embedding: values = (0..<current.count).map { _ in Float(random.normal()) }
            case .unchanged: continue
            }
            out[name] = Tensor(shape: current.shape, values: values)
        }
        return out
    }

    /// A [fanIn, fanOut] float matrix drawn by this scheme (a MatMul weight), seeded.
    func matrix(fanIn: Int, fanOut: Int, seed: UInt64) -> Tensor {
        var random = SplitMix64(seed: seed)
        return Tensor(shape: [fanIn, fanOut], values: (0..<fanIn * fanOut).map { _ in Float(sample(fanIn: fanIn, fanOut: fanOut, &random)) })
    }

    private func sample(fanIn: Int, fanOut: Int, _ random: inout SplitMix64) -> Double {
        let fanIn = Double(max(fanIn, 1)), fanOut = Double(max(fanOut, 1))
        switch self {
        case .kaimingUniform: return random.uniform(bound: (6 / fanIn).squareRoot())
        case .kaimingNormal: return random.normal() * (2 / fanIn).squareRoot()
        case .xavierUniform: return random.uniform(bound: (6 / (fanIn + fanOut)).squareRoot())
        case .xavierNormal: return random.normal() * (2 / (fanIn + fanOut)).squareRoot()
        }
    }
}

/// What a parameter is to the graph, for initialization.
enum ParameterRole: Equatable {
    case weight(fanIn: Int, fanOut: Int)
    case zeros, ones, embedding, unchanged

    init(of name: String, shape: [Int], in graph: Graph) {
        for node in graph.nodes where node.isDefaultDomain {
            guard let position = node.inputs.firstIndex(of: name) else { continue }
            switch (node.opType, position) {
            case ("MatMul", 1) where shape.count >= 2:
                self = .weight(fanIn: shape[shape.count - 2], fanOut: shape[shape.count - 1])
                return
            case ("MatMul", 0) where shape.count >= 2:
                self = .weight(fanIn: shape[shape.count - 1], fanOut: shape[shape.count - 2])
                return
            case ("Gemm", 1) where shape.count == 2:
                let transB = node.attribute("transB").flatMap { v -> Int64? in if case .int(let i) = v { return i }; return nil } ?? 0
                self = transB != 0 ? .weight(fanIn: shape[1], fanOut: shape[0]) : .weight(fanIn: shape[0], fanOut: shape[1])
                return
            case ("Conv", 1) where shape.count >= 3:
                let receptive = shape[2...].reduce(1, *)
                self = .weight(fanIn: shape[1] * receptive, fanOut: shape[0] * receptive)
                return
            case ("Gemm", 2), ("Conv", 2), ("Add", _), ("Sub", _):
                self = .zeros
                return
            case ("LayerNormalization", 1), ("BatchNormalization", 1):
                self = .ones
                return
            case ("LayerNormalization", 2), ("BatchNormalization", 2):
                self = .zeros
                return
            case ("Gather", 0):
                self = .embedding
                return
            default:
                continue
            }
        }
        self = .unchanged
    }
}

/// SplitMix64: a small seeded generator whose sequence is the same on every machine.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
    mutating func uniform(bound: Double) -> Double { (2 * unit() - 1) * bound }
    /// Standard normal (Box–Muller).
    mutating func normal() -> Double {
        let u = max(unit(), 0x1p-53), v = unit()
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
    }
}
