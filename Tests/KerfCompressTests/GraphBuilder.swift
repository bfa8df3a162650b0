import KerfCore
import KerfRuntime
import KerfTestSupport

/// Builds small float32 graphs in code with seeded random weights, for pruning tests.
final class GraphBuilder {
    var nodes: [Node] = []
    var initializers: [Initializer] = []
    var valueInfo: [ValueInfo] = []
    private let generator: SeededGenerator
    private var counter = 0

    init(seed: UInt64 = 0x9E37_79B9_7F4A_7C15) { generator = SeededGenerator(seed: seed) }

    /// Uniform values in [-1, 1] (deterministic for a seed).
    func random(_ n: Int) -> [Float] { generator.floats(n) }

    @discardableResult
    func constant(_ name: String, _ shape: [Int], _ values: [Float]? = nil) -> String {
        initializers.append(Initializer(name: name, tensor: Tensor(shape: shape, values: values ?? random(shape.reduce(1, *)))))
        return name
    }

    func int64(_ name: String, _ values: [Int64]) -> String {
        initializers.append(Initializer(name: name, tensor: Tensor(shape: [values.count], values: values)))
        return name
    }

    /// Adds a node; returns its first output ("<name>.out").
    @discardableResult
    func node(_ op: String, _ inputs: [String], name: String? = nil, _ attributes: [String: AttributeValue] = [:]) -> String {
        counter += 1
        let n = name ?? "\(op.lowercased())\(counter)"
        let attrs = attributes.keys.sorted().map { Attribute(name: $0, value: attributes[$0]!) }
        nodes.append(Node(name: n, opType: op, inputs: inputs, outputs: ["\(n).out"], attributes: attrs))
        return "\(n).out"
    }

    func conv(_ x: String, _ c: Int, _ m: Int, name: String, kernel: Int = 3, stride: Int = 1, group: Int = 1, bias: Bool = true) -> String {
        let w = constant("\(name).weight", [m, c / group, kernel, kernel])
        var inputs = [x, w]
        if bias { inputs.append(constant("\(name).bias", [m])) }
        let p = Int64(kernel / 2)
        return node("Conv", inputs, name: name, ["pads": .ints([p, p, p, p]), "strides": .ints([Int64(stride), Int64(stride)]),
                                                 "group": .int(Int64(group))])
    }

    func batchNorm(_ x: String, _ c: Int, name: String) -> String {
        let variance = random(c).map { abs($0) + 0.5 }
        let inputs = [x, constant("\(name).scale", [c]), constant("\(name).B", [c]), constant("\(name).mean", [c]),
                      constant("\(name).var", [c], variance)]
        return node("BatchNormalization", inputs, name: name)
    }

    func gemm(_ x: String, _ k: Int, _ n: Int, name: String, transB: Bool = false) -> String {
        let b = constant("\(name).weight", transB ? [n, k] : [k, n])
        return node("Gemm", [x, b, constant("\(name).bias", [n])], name: name, ["transB": .int(transB ? 1 : 0)])
    }

    /// Unsqueeze(Gather(Shape(value), index), [0]): one dimension of `value` as a one-element
    /// int64 tensor, as exporters compute Reshape targets at run time.
    func dim(of value: String, _ index: Int64) -> String {
        let i = "index\(nodes.count)"
        initializers.append(Initializer(name: i, tensor: Tensor(scalar: index)))
        return node("Unsqueeze", [node("Gather", [node("Shape", [value]), i], ["axis": .int(0)]), int64("axes\(nodes.count)", [0])])
    }

    func declare(_ value: String, _ shape: [Int]) {
        valueInfo.append(ValueInfo(name: value, type: .tensor(dtype: .float, shape: shape.map { .value($0) })))
    }

    func model(input: String = "x", shape: [Int], output: String) -> Model {
        let g = Graph(name: "test", nodes: nodes, inputs: [ValueInfo(name: input, type: .tensor(dtype: .float, shape: shape.map { .value($0) }))],
                      outputs: [ValueInfo(name: output, type: .tensor(dtype: .float, shape: nil))], valueInfo: valueInfo,
                      initializers: initializers)
        return Model(graph: g, irVersion: 8, opsetImports: [OpsetImport(domain: "", version: 17)])
    }
}

extension Model {
    func initializer(_ name: String) -> Tensor { graph.initializer(named: name)!.tensor }

    /// Sets the given channels of initializer `name` along `axis` to `value`.
    func fill(_ name: String, axis: Int, channels: [Int], with value: Float = 0) {
        let i = graph.initializers.firstIndex { $0.name == name }!
        var t = graph.initializers[i].tensor
        let outer = t.shape[..<axis].reduce(1, *), n = t.shape[axis], inner = t.shape[(axis + 1)...].reduce(1, *)
        t.withMutableElements(as: Float.self) { w in
            for o in 0..<outer { for c in channels { for k in 0..<inner { w[(o * n + c) * inner + k] = value } } }
        }
        graph.initializers[i].tensor = t
    }

    /// Runs the model once on one thread without graph optimizations.
    func run(_ x: Tensor) throws -> [Float] {
        let session = try Session(model: self, options: SessionOptions(threads: 1, optimizationLevel: 0))
        return try session.run([graph.runtimeInputs[0].name: x])[0].array(of: Float.self)
    }

    /// A deep copy through serialization.
    func copy() throws -> Model { try Model.load(bytes: serialized()) }
}
