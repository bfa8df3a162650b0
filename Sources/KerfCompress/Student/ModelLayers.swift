import KerfCore
import KerfGraph

/// One repeated block of an exported model (a transformer encoder or decoder layer): the nodes
/// of one `layers.N` / `layer.N` / `h.N` / `blocks.N` module, the value it reads from the layer
/// before (the residual stream) and the one value it hands on.
public struct ModelLayer: Sendable, Equatable {
    /// N, the module's index in the exporter's names.
    public var index: Int
    /// Indices of its nodes in the graph, in graph order.
    public var nodes: [Int]
    /// The stream value it reads: the previous layer's output, or for the first layer the one
    /// value it reads that the second does not.
    public var input: String
    /// The one value of its own that anything outside it reads.
    public var output: String
    /// Elements of the initializers only its nodes read.
    public var parameters: Int
}

/// Module names that number repeated layers in PyTorch and Hugging Face exports
/// (`encoder.layer.3`, `layers.3`, GPT-2's `h.3`, `blocks.3`).
private let layerModuleNames: Set<String> = ["layer", "layers", "h", "block", "blocks", "blk"]

/// The layer index a node or initializer name carries: N after the first `layer`/`layers`/`h`/
/// `blocks` component (components split at '/', '.', ':' and spaces).
func layerIndex(in name: String) -> Int? {
    let parts = name.split(whereSeparator: { $0 == "/" || $0 == "." || $0 == ":" || $0 == " " })
    for (i, part) in parts.enumerated().dropLast() where layerModuleNames.contains(String(part)) {
        if let n = Int(parts[i + 1]), n >= 0 { return n }
    }
    return nil
}

extension Graph {
    /// The repeated layers of an exported model, by index. A node belongs to layer N when its
    /// name says so (or its "namespace" metadata, the module path the dynamo exporter records),
    /// else when the initializers it reads do, else when every layer node it reads
    /// from or feeds is in layer N (shape arithmetic and constants inside a layer). Throws
    /// `unsupported` when the names number no layers or a layer is not one block on a stream: more
    /// than one of its values read outside it, or no stream value to tell.
    public func repeatedLayers() throws -> [ModelLayer] {
        var label = [Int?](repeating: nil, count: nodes.count)
        let initializerLayer = Dictionary(initializers.compactMap { i in layerIndex(in: i.name).map { (i.name, $0) } }, uniquingKeysWith: { a, _ in a })
        for (i, n) in nodes.enumerated() {
            if let k = layerIndex(in: n.name) ?? n.metadata("namespace").flatMap(layerIndex(in:)) {
                label[i] = k
            } else {
                let ks = Set(n.inputs.compactMap { initializerLayer[$0] })
                if ks.count == 1 { label[i] = ks.first }
            }
        }
        guard label.contains(where: { $0 != nil }) else {
            throw KerfError.unsupported("no repeated layers found: no node or weight name numbers them (as layers.N, layer.N, h.N or blocks.N)")
        }
        var producer: [String: Int] = [:], readers: [String: [Int]] = [:]
        for (i, n) in nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
            for x in n.inputs where !x.isEmpty { readers[x, default: []].append(i) }
        }
        // A node without a layer name joins layer N when it lies inside it: each of its inputs is
        // a constant or comes from a node of layer N, and its outputs are read by nodes of layer N
        // only (Constant nodes, shape arithmetic).
        let constants = Set(initializers.map(\.name))
        let graphOutputs = Set(outputs.map(\.name))
        var changed = true
        while changed {
            changed = false
            for (i, n) in nodes.enumerated() where label[i] == nil {
                var ks = Set<Int?>()
                for x in n.inputs where !x.isEmpty && !constants.contains(x) { ks.insert(producer[x].flatMap { label[$0] }) }
                let consumers = n.outputs.flatMap { readers[$0] ?? [] }
                guard !consumers.isEmpty, !n.outputs.contains(where: graphOutputs.contains) else { continue }
                for r in consumers { ks.insert(label[r]) }
                if ks.count == 1, let k = ks.first! {
                    label[i] = k
                    changed = true
                }
            }
        }

        let indices = Set(label.compactMap { $0 }).sorted()
        var layers: [ModelLayer] = []
        var inputsOf: [[String]] = []
        for k in indices {
            let members = label.indices.filter { label[$0] == k }
            let memberSet = Set(members)
            var escaping: [String] = []
            var external: [String] = []
            for i in members {
                for o in nodes[i].outputs where !o.isEmpty {
                    let outside = (readers[o] ?? []).contains { !memberSet.contains($0) } || graphOutputs.contains(o)
                    if outside && !escaping.contains(o) { escaping.append(o) }
                }
                for x in nodes[i].inputs where !x.isEmpty && !constants.contains(x) && !external.contains(x) {
                    if let p = producer[x], memberSet.contains(p) { continue }
                    external.append(x)
                }
            }
            guard escaping.count == 1 else {
                throw KerfError.unsupported("layer \(k) is not one block on a stream: \(escaping.count) of its values are read outside it"
                                            + (escaping.isEmpty ? "" : " (\(escaping.prefix(4).joined(separator: ", ")))"))
            }
            var read = Set<String>()
            for i in members { read.formUnion(nodes[i].inputs) }
            let others = Set(label.indices.filter { label[$0] != nil && label[$0] != k }.flatMap { nodes[$0].inputs })
            let own = initializers.filter { read.contains($0.name) && !others.contains($0.name) && !graphInputNames.contains($0.name) }
            layers.append(ModelLayer(index: k, nodes: members, input: "", output: escaping[0], parameters: own.reduce(0) { $0 + $1.tensor.count }))
            inputsOf.append(external)
        }
        for i in layers.indices {
            if i > 0 {
                guard inputsOf[i].contains(layers[i - 1].output) else {
                    throw KerfError.unsupported("layer \(layers[i].index) does not read layer \(layers[i - 1].index)'s output '\(layers[i - 1].output)'")
                }
                layers[i].input = layers[i - 1].output
            } else {
                let candidates = layers.count > 1 ? inputsOf[0].filter { !inputsOf[1].contains($0) } : inputsOf[0]
                guard candidates.count == 1 else {
                    throw KerfError.unsupported("the stream into layer \(layers[0].index) is not one value (candidates: "
                                                + "\(candidates.prefix(4).joined(separator: ", ")))")
                }
                layers[0].input = candidates[0]
            }
        }
        return layers
    }

    private var graphInputNames: Set<String> { Set(inputs.map(\.name)) }
}
