import KerfCore
import KerfGraph

// Channel pruning first finds, for every Conv / Gemm / MatMul whose output units could be
// removed (a "space"), every place in the graph that indexes those units, and ties spaces
// that residual ops combine element by element. A tied set (a "group") is pruned as one.

/// Where the channels of one tracked value lie.
struct ChannelLayout {
    /// The space whose channels these are (spaces tied later are merged by union-find).
    var space: Int
    /// The single space this value derives from, nil once two spaces were combined.
    var origin: Int?
    /// The channel axis counted from the end (-1 is the last axis).
    var axis: Int
    /// The value's rank, when known.
    var rank: Int?
    /// Consecutive entries along the axis that belong to one channel: 1, or H*W after a
    /// spatial map was flattened.
    var block = 1
    /// Every dimension after the channel axis is known to be 1 (after a global pool).
    var trailingOnes = false
    /// The channels are spread over axes a Reshape merged (attention heads folded into the
    /// batch): the value's declared shape cannot be rewritten and is dropped instead.
    var merged = false
}

/// One rewrite that removing channels of a space needs.
enum ChannelEdit {
    /// Keep only the kept channels of constant `initializer` along `axis`; each channel spans
    /// `block` consecutive entries there, and the axis holds `segments` runs of all channels
    /// (3 for a fused Q/K/V projection). `node` is the reader (for the report).
    case slice(initializer: String, axis: Int, block: Int, node: Int, segments: Int = 1)
    /// A depthwise Conv whose `group` attribute becomes the kept channel count.
    case depthwiseGroup(node: Int)
    /// Entry `index` of the int64 shape constant `initializer` becomes kept * `unitsPerChannel`.
    case shapeEntry(initializer: String, index: Int, unitsPerChannel: Int, node: Int)
}

/// A weight block whose magnitude ranks a channel: entries [c*block, (c+1)*block) along `axis`.
struct ScoredWeight {
    var name: String
    var axis: Int
    var block = 1
}

/// The output units of one Conv (filters), Gemm or MatMul (columns of the weight), or the
/// heads of one attention block.
struct ChannelSpace {
    /// Index in `graph.nodes` of the producer.
    var producer: Int
    /// The producer's weight (names the space in the report).
    var weight: String
    var channels: Int
    /// The weights whose per-channel norms rank the channels.
    var scored: [ScoredWeight]
    /// For a Q/K/V projection: the attention-head space that prunes its units per head.
    var heads: Int?
    var edits: [ChannelEdit] = []
    /// The scale of the BatchNormalization that normalizes these channels, if any.
    var gamma: String?
    /// Why these channels cannot be removed safely; empty when they can.
    var problems: [String] = []
}

/// What the analysis found: the spaces, the layout of every tracked value, and the groups of
/// spaces tied together (member indices ascending, groups ordered by first member).
struct ChannelGroups {
    /// The initializers the analysis treats as constants (not overridable by a feed).
    var constants: [String: Tensor]
    var spaces: [ChannelSpace]
    var layouts: [String: ChannelLayout]
    var groups: [[Int]]

    func problems(of group: [Int]) -> [String] {
        var seen = Set<String>(), out: [String] = []
        for s in group { for p in spaces[s].problems where seen.insert(p).inserted { out.append(p) } }
        return out
    }

    /// "conv1.weight + conv2.weight": the producer weights of a group.
    func name(of group: [Int]) -> String { group.map { spaces[$0].weight }.joined(separator: " + ") }

    /// All channels of the group come from one space, its units grouped per head.
    func isAttentionHeads(_ group: [Int]) -> Bool { group.count == 1 && spaces[group[0]].scored.count > 1 }
}

/// Walks the graph once in topological order, following each producer's channels forward.
/// The rules for each operator live in `ChannelAnalysis+Rules.swift`.
struct ChannelAnalysis {
    let graph: Graph
    let options: PruneOptions
    /// Initializers that no feed can override.
    let constants: [String: Tensor]
    /// How many node inputs read each value (subgraph reads not included).
    let readers: [String: Int]
    /// The node producing each value, and the nodes reading it.
    let producer: [String: Int]
    let readersOf: [String: [Int]]
    let graphOutputs: Set<String>
    /// Declared shapes of graph inputs, outputs and value_info.
    let declared: [String: [Dim]]
    /// Shapes of values as far as they are known: static inference over the graph
    /// (`Graph.inferTypes`), which starts from and is completed by the declarations.
    let shapes: [String: [Dim]]
    var layouts: [String: ChannelLayout] = [:]
    var spaces: [ChannelSpace] = []
    private var parent: [Int] = []

    /// `initializersAreConstant`: initializers listed as graph inputs are constants too (IR < 4).
    /// `opset` is the default-domain opset.
    init(graph: Graph, options: PruneOptions, opset: Int, initializersAreConstant: Bool = false) {
        self.graph = graph
        self.options = options
        let fed = initializersAreConstant ? [] : Set(graph.inputs.map(\.name))
        var constants: [String: Tensor] = [:]
        for i in graph.initializers where !fed.contains(i.name) { constants[i.name] = i.tensor }
        self.constants = constants
        var readers: [String: Int] = [:], producer: [String: Int] = [:], readersOf: [String: [Int]] = [:]
        for (k, n) in graph.nodes.enumerated() {
            for i in n.inputs where !i.isEmpty { readers[i, default: 0] += 1; readersOf[i, default: []].append(k) }
            for o in n.outputs where !o.isEmpty { producer[o] = k }
        }
        self.readers = readers
        self.producer = producer
        self.readersOf = readersOf
        graphOutputs = Set(graph.outputs.map(\.name))
        var declared: [String: [Dim]] = [:]
        for v in graph.inputs + graph.valueInfo + graph.outputs { if let s = v.shape { declared[v.name] = s } }
        self.declared = declared
        var shapes = declared
        for (name, type) in graph.inferTypes(opset: opset, initializersAreConstant: initializersAreConstant).types {
            if case .tensor(_, let s?) = type { shapes[name] = s }
        }
        self.shapes = shapes
    }

    /// Runs the analysis over the whole graph. `opset` is the default-domain opset.
    static func analyze(_ graph: Graph, options: PruneOptions, opset: Int, initializersAreConstant: Bool = false) -> ChannelGroups {
        var a = ChannelAnalysis(graph: graph, options: options, opset: opset, initializersAreConstant: initializersAreConstant)
        let (order, cyclic) = Graph.dependencyOrder(graph.nodes)
        for i in order + cyclic { a.visit(i) }
        a.rejectEscapingValues()
        a.findAttentionHeads(opset: opset)
        return ChannelGroups(constants: a.constants, spaces: a.spaces, layouts: a.layouts, groups: a.groups())
    }

    // MARK: - Spaces and ties

    /// Registers the output units of `node` as a new space and slices its weight.
    mutating func startSpace(node: Int, weight: String, axis: Int, channels: Int) -> Int {
        let n = graph.nodes[node]
        let s = addSpace(ChannelSpace(producer: node, weight: weight, channels: channels, scored: [ScoredWeight(name: weight, axis: axis)]))
        if let w = constants[weight] {
            if w.dtype != .float {
                spaces[s].problems.append("weight '\(weight)' is \(w.dtype); only float32 weights are ranked")
            } else if w.count < options.minElements {
                spaces[s].problems.append("weight '\(weight)' has \(w.count) elements, fewer than the minimum \(options.minElements)")
            }
        }
        if channels < 2 { spaces[s].problems.append("\(n.label) has \(channels) output channel") }
        addSlice(weight, axis: axis, block: 1, node: node, space: s)
        return s
    }

    mutating func addSpace(_ space: ChannelSpace) -> Int {
        spaces.append(space)
        parent.append(spaces.count - 1)
        return spaces.count - 1
    }

    /// Ties two spaces: they are pruned together, with the same channels removed.
    mutating func tie(_ a: Int, _ b: Int) {
        let ra = root(a), rb = root(b)
        if ra != rb { parent[max(ra, rb)] = min(ra, rb) }
    }

    mutating func root(_ s: Int) -> Int {
        var r = s
        while parent[r] != r { r = parent[r] }
        var x = s
        while parent[x] != r { let next = parent[x]; parent[x] = r; x = next }
        return r
    }

    private mutating func groups() -> [[Int]] {
        var members: [Int: [Int]] = [:]
        for s in spaces.indices { members[root(s), default: []].append(s) }
        return members.keys.sorted().map { members[$0]! }
    }

    // MARK: - Problems and edits

    /// Marks the channels of `layout` as not removable.
    mutating func reject(_ layout: ChannelLayout, _ reason: String) {
        spaces[layout.space].problems.append(reason)
    }

    /// Records that constant `name`, read by `node`, holds one entry block per channel of
    /// `space` along `axis` (in `segments` runs), or marks the space unsafe when that constant
    /// cannot be changed.
    mutating func addSlice(_ name: String, axis: Int, block: Int, node: Int, space: Int, segments: Int = 1) {
        guard checkEditable(name, node: node, space: space) else { return }
        let t = constants[name]!
        let expected = spaces[space].channels * block * segments
        guard axis >= 0, axis < t.rank, t.shape[axis] == expected, t.dtype != .string else {
            spaces[space].problems.append("'\(name)' of \(graph.nodes[node].label) has shape \(t.shape), not \(expected) along axis \(axis)")
            return
        }
        spaces[space].edits.append(.slice(initializer: name, axis: axis, block: block, node: node, segments: segments))
    }

    /// True when constant `name` may be rewritten for `space`; otherwise records why not.
    /// `sharedBy`: nodes that may read it too, being rewritten alike.
    mutating func checkEditable(_ name: String, node: Int, space: Int, sharedBy: Set<Int> = []) -> Bool {
        let n = graph.nodes[node]
        var problem: String?
        if constants[name] == nil {
            problem = "'\(name)' read by \(n.label) is not a constant initializer"
        } else if graphOutputs.contains(name) {
            problem = "'\(name)' is also a graph output"
        } else if readers[name, default: 0] > 1 && !readersOf[name, default: []].allSatisfy({ $0 == node || sharedBy.contains($0) }) {
            problem = "'\(name)' is shared by several nodes"
        } else if options.exclude.excludes(weight: name, node: n) {
            problem = "'\(name)' of \(n.label) is excluded"
        }
        if let problem { spaces[space].problems.append(problem) }
        return problem == nil
    }

    // MARK: - Graph facts

    /// The known (declared or inferred) rank of `value`, if any.
    func knownRank(_ value: String) -> Int? { shapes[value]?.count }

    /// The rank of a tracked value: from its layout, else from its known shape.
    func rank(of value: String, _ layout: ChannelLayout) -> Int? { layout.rank ?? knownRank(value) }

    /// Product of the dimensions after the channel axis of a tracked value, when known.
    func trailingSize(of value: String, _ layout: ChannelLayout) -> Int? {
        if layout.trailingOnes { return 1 }
        guard let r = rank(of: value, layout), let dims = shapes[value], dims.count == r else { return nil }
        var product = 1
        for d in dims[(r + layout.axis + 1)...] {
            guard case .value(let v) = d else { return nil }
            product *= v
        }
        return product
    }

    /// Tracked values that leave the graph or are read inside a subgraph cannot change shape.
    private mutating func rejectEscapingValues() {
        let hidden = graph.namesReadInSubgraphs()
        for name in layouts.keys.sorted() {
            let l = layouts[name]!
            if graphOutputs.contains(name) { reject(l, "'\(name)' is a graph output") }
            if hidden.contains(name) { reject(l, "'\(name)' is read inside a subgraph") }
        }
    }
}

extension Node {
    /// An integer attribute, or `fallback` when absent.
    func int(_ name: String, default fallback: Int) -> Int {
        if case .int(let v)? = attribute(name) { return Int(v) }
        return fallback
    }

    /// Input `k`, or "" when the node has fewer inputs.
    func input(_ k: Int) -> String { k < inputs.count ? inputs[k] : "" }
}
