import KerfCore
import KerfGraph
import KerfRuntime

/// How a `Trainer` runs: threads and graph optimizations of its sessions.
public struct TrainerOptions: Sendable {
    /// Threads per run; 0: one per core.
    public var threads: Int
    /// The sessions' graph optimization level (0: run the training graph as written).
    public var optimizationLevel: Int

    public init(threads: Int = 0, optimizationLevel: Int = 1) {
        self.threads = threads
        self.optimizationLevel = optimizationLevel
    }
}

/// Trains a model's initializers: each step runs forward, loss and backward in one session
/// and updates the parameters it owns. The model it was made from is not modified;
/// `trainedModel()` is a copy with the trained values.
///
/// The training graph is built at the first run, when the dtypes of the loss's targets are
/// known from the feeds (integer class indices or float class probabilities). Not thread-safe:
/// one thread at a time.
public final class Trainer {
    public let loss: Loss
    public let options: TrainerOptions
    private let model: Model
    private let selection: ParameterSelection
    private var compiled: Compiled?
    /// Current values of the trained parameters (copies the trainer owns), by name.
    private var values: [String: Tensor] = [:]
    /// The gradients of the last `backward`, by parameter name.
    private var lastGradients: [String: Tensor] = [:]

    private struct Compiled {
        let training: TrainingGraph
        let session: Session
        let evaluation: Session
        let targetTypes: [String: (dtype: DType, rank: Int)]
    }

    public init(model: Model, loss: Loss, parameters: ParameterSelection = ParameterSelection(), options: TrainerOptions = TrainerOptions()) throws {
        self.model = model
        self.loss = loss
        selection = parameters
        self.options = options
        let inputs = Set(model.graph.inputs.map(\.name))
        let values = Set(model.graph.nodes.flatMap(\.outputs)).union(inputs).union(model.graph.initializers.map(\.name))
        try loss.validate(outputs: Set(model.graph.outputs.map(\.name)), values: values, inputs: inputs)
    }

    /// The trained parameters' names, in the model's order (builds the graph from `feeds` if
    /// no run has yet).
    public func parameterNames(feeds: [String: Tensor]) throws -> [String] { try prepared(feeds).training.parameters }

    /// Copies of the parameters' current values (empty before the first run).
    public func parameters() -> [String: Tensor] { values.mapValues(Self.copy) }

    /// Copies of the gradients of the last `backward` or `step`.
    public func gradients() -> [String: Tensor] { lastGradients.mapValues(Self.copy) }

    /// Runs forward, loss and backward on `feeds` (model inputs and the loss's targets);
    /// keeps the gradients and returns the loss. Throws, keeping nothing, when the loss is not
    /// finite.
    @discardableResult
    public func backward(_ feeds: [String: Tensor]) throws -> Double {
        let c = try prepared(feeds)
        let results = try c.session.run(try runFeeds(feeds, c))
        let lossValue = try Self.scalar(results[0], what: "the loss")
        guard lossValue.isFinite else {
            throw KerfError.invalidArgument("the loss is \(lossValue) on this batch; the parameters are unchanged")
        }
        var gradients: [String: Tensor] = [:]
        var k = 1
        for p in c.training.parameters where c.training.gradientNames[p] != nil {
            gradients[p] = results[k]
            k += 1
        }
        lastGradients = gradients
        return lossValue
    }

    /// The loss on `feeds` with the current parameters (forward only).
    public func evaluate(_ feeds: [String: Tensor]) throws -> Double {
        let c = try prepared(feeds)
        return try Self.scalar(try c.evaluation.run(try runFeeds(feeds, c))[0], what: "the loss")
    }

    /// Overwrites parameter `name` with `value` (same dtype and shape).
    public func setParameter(_ name: String, _ value: Tensor) throws {
        guard let current = values[name] else { throw KerfError.invalidArgument("'\(name)' is not a trained parameter") }
        guard current.dtype == value.dtype, current.shape == value.shape else {
            throw KerfError.shapeMismatch("parameter '\(name)' is \(current.dtype) \(current.shape), not \(value.dtype) \(value.shape)")
        }
        values[name] = Self.copy(value)
    }

    /// The model with the trained values in place of the initial ones (a copy; the graph is
    /// the model's own, an inference graph).
    public func trainedModel() -> Model {
        let g = model.graph.copy()
        for i in g.initializers.indices {
            if let v = values[g.initializers[i].name] {
                var initializer = Initializer(name: g.initializers[i].name, tensor: Self.copy(v))
                initializer.docString = g.initializers[i].docString
                g.initializers[i] = initializer
            }
        }
        let copy = Model(graph: g, irVersion: model.irVersion, opsetImports: model.opsetImports)
        copy.producerName = model.producerName
        copy.producerVersion = model.producerVersion
        copy.domain = model.domain
        copy.modelVersion = model.modelVersion
        copy.docString = model.docString
        copy.metadataProps = model.metadataProps
        return copy
    }

    // MARK: Internals

    /// Mutable access to the parameters and their gradients for an optimizer.
    func withParametersAndGradients(_ body: (_ name: String, _ parameter: Tensor, _ gradient: Tensor) throws -> Void) rethrows {
        for (name, gradient) in lastGradients {
            if let p = values[name] { try body(name, p, gradient) }
        }
    }

    private func prepared(_ feeds: [String: Tensor]) throws -> Compiled {
        var targetTypes: [String: (dtype: DType, rank: Int)] = [:]
        for name in loss.targetNames {
            guard let t = feeds[name] else { throw KerfError.invalidArgument("the loss's target '\(name)' was not fed") }
            targetTypes[name] = (t.dtype, t.rank)
        }
        if let c = compiled {
            for (name, type) in targetTypes {
                guard let first = c.targetTypes[name], first == type else {
                    let began = c.targetTypes[name].map { "\($0.dtype) of rank \($0.rank)" } ?? "?"
                    throw KerfError.invalidArgument("'\(name)' is fed as \(type.dtype) of rank \(type.rank), but training began with \(began)")
                }
            }
            return c
        }
        let training = try TrainingGraph(model: model, loss: loss, parameters: selection, targetTypes: targetTypes)
        let sessionOptions = SessionOptions(threads: options.threads, optimizationLevel: options.optimizationLevel)
        let session = try Session(graph: training.graph, opsets: training.opsets, options: sessionOptions)
        let evaluation = try Session(graph: training.evaluationGraph, opsets: training.opsets, options: sessionOptions)
        for p in training.parameters {
            guard let initializer = model.graph.initializer(named: p) else { continue }
            values[p] = Self.copy(initializer.tensor)
        }
        let c = Compiled(training: training, session: session, evaluation: evaluation, targetTypes: targetTypes)
        compiled = c
        return c
    }

    private func runFeeds(_ feeds: [String: Tensor], _ c: Compiled) throws -> [String: Tensor] {
        var all = feeds
        for p in c.training.parameters {
            if feeds[p] != nil { throw KerfError.invalidArgument("'\(p)' is a trained parameter, not a feed") }
            all[p] = values[p]
        }
        return all
    }

    static func copy(_ t: Tensor) -> Tensor { Tensor(dtype: t.dtype, shape: t.shape, storage: t.storage.copy()) }

    private static func scalar(_ t: Tensor, what: String) throws -> Double {
        guard t.count == 1 else { throw KerfError.shapeMismatch("\(what) has \(t.count) elements, not 1") }
        switch t.dtype {
        case .float: return Double(t.withElements(as: Float.self) { $0[0] })
        case .double: return t.withElements(as: Double.self) { $0[0] }
        default: throw KerfError.invalidArgument("\(what) is \(t.dtype), not a float")
        }
    }
}
