import KerfCore

extension Graph {
    /// Every value the graph names: node outputs, declared inputs and initializers.
    public var valueNames: Set<String> {
        Set(nodes.flatMap(\.outputs)).union(inputs.map(\.name)).union(initializers.map(\.name))
    }

    /// A copy sharing nothing mutable with `self` (nodes, value infos and tensors are values).
    public func copy() -> Graph {
        let g = Graph(name: name, nodes: nodes, inputs: inputs, outputs: outputs, valueInfo: valueInfo, initializers: initializers)
        g.docString = docString
        return g
    }

    /// Removes the nodes at `indices`, keeping the order of the others.
    public func removeNodes(at indices: Set<Int>) {
        guard !indices.isEmpty else { return }
        nodes = nodes.enumerated().filter { !indices.contains($0.offset) }.map(\.element)
    }

    /// Makes every node input named by a key of `renames` read the value it maps to (followed
    /// transitively). Graph outputs are not renamed.
    public func redirectReaders(_ renames: [String: String]) {
        guard !renames.isEmpty else { return }
        func resolve(_ name: String) -> String {
            var r = name, steps = 0
            while let next = renames[r], steps <= renames.count { r = next; steps += 1 }
            return r
        }
        for i in nodes.indices { nodes[i].inputs = nodes[i].inputs.map { $0.isEmpty ? $0 : resolve($0) } }
    }

    /// Adds an initializer under a fresh name derived from `base` and returns the name.
    @discardableResult
    public func addConstant(_ base: String, _ tensor: Tensor, names: NameAllocator) -> String {
        let name = names.make(base)
        initializers.append(Initializer(name: name, tensor: tensor))
        return name
    }

    /// Drops initializers that no node reads and that are not graph inputs or outputs.
    public func removeUnreadInitializers() {
        let read = Set(nodes.flatMap(\.readNames)).union(outputs.map(\.name)).union(inputs.map(\.name))
        initializers.removeAll { !read.contains($0.name) }
    }

    /// Removes nodes none of whose outputs is read or is a graph output (repeatedly, so chains
    /// feeding only dead nodes go too), then initializers nothing reads.
    public func removeDeadNodes() {
        while true {
            let usage = Usage(self)
            let before = nodes.count
            nodes.removeAll { n in n.outputs.allSatisfy { $0.isEmpty || usage.isUnread($0) } }
            if nodes.count == before { break }
        }
        removeUnreadInitializers()
    }
}

extension Graph {
    /// Replaces each default-domain Constant node (value, value_float, value_int) whose output is
    /// no graph output by an initializer of the same name holding its value, so that passes
    /// reading constants from initializers see the values exporters write as Constant nodes.
    public func constantNodesToInitializers() {
        let graphOutputs = Set(outputs.map(\.name))
        let values = constantValues()
        let initializerNames = Set(initializers.map(\.name))
        var removed = Set<Int>()
        for (i, n) in nodes.enumerated() where n.isDefaultDomain && n.opType == "Constant" && n.outputs.count == 1 {
            let name = n.outputs[0]
            guard let value = values[name], !graphOutputs.contains(name), !initializerNames.contains(name) else { continue }
            initializers.append(Initializer(name: name, tensor: value))
            removed.insert(i)
        }
        removeNodes(at: removed)
    }

    /// Gives every Reshape but the first that reads its target from a default-domain Concat
    /// shared with other Reshapes (dynamo writes one `[B, S, width]` target for all layers) a
    /// copy of that Concat of its own, placed right after the original, so that a pass can
    /// rewrite one reader's target without touching the others'.
    public func unshareReshapeConcats() {
        var producer: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
        let names = NameAllocator(self)
        let graphOutputs = Set(outputs.map(\.name))
        var seen = Set<String>(), copies: [(after: Int, node: Node)] = []
        for i in nodes.indices where nodes[i].isDefaultDomain && nodes[i].opType == "Reshape" && nodes[i].inputs.count == 2 {
            let target = nodes[i].inputs[1]
            guard let p = producer[target], nodes[p].isDefaultDomain, nodes[p].opType == "Concat", nodes[p].outputs.count == 1,
                  !graphOutputs.contains(target), !seen.insert(target).inserted else { continue }
            var copy = nodes[p]
            copy.outputs = [names.make(target + "_copy")]
            if !copy.name.isEmpty { copy.name = names.make(copy.name + "_copy") }
            copies.append((p, copy))
            nodes[i].inputs[1] = copy.outputs[0]
        }
        for (after, node) in copies.sorted(by: { $0.after > $1.after }) { nodes.insert(node, at: after + 1) }
    }

    /// Gives every reading of an initializer selected by `include` (and not a graph input) after
    /// its first, by default-domain nodes of `opTypes` (nil: any node), a copy of its own.
    /// Returns each copy's name mapped to the initializer it copies (for `shareIdenticalCopies`).
    @discardableResult
    public func unshareInitializers(readBy opTypes: Set<String>? = nil, where include: (Initializer) -> Bool) -> [String: String] {
        let names = NameAllocator(self)
        let graphInputs = Set(inputs.map(\.name))
        let byName = Dictionary(initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var seen = Set<String>(), copies: [String: String] = [:]
        for i in nodes.indices where opTypes.map({ nodes[i].isDefaultDomain && $0.contains(nodes[i].opType) }) ?? true {
            for (k, input) in nodes[i].inputs.enumerated() {
                guard let initializer = byName[input], !graphInputs.contains(input), include(initializer) else { continue }
                if seen.insert(input).inserted { continue }
                let copy = names.make(input + "_copy")
                initializers.append(Initializer(name: copy, tensor: initializer.tensor))
                nodes[i].inputs[k] = copy
                copies[copy] = input
            }
        }
        return copies
    }
}

extension Graph {
    /// Replaces each default-domain Identity node reading an initializer (TorchScript stores
    /// identical tensors once and fans them out this way) by an initializer of the node's output
    /// name holding the same tensor, so that every reader names a tensor of its own. Identity
    /// chains resolve in node order; graph inputs and outputs are left alone. Returns each new
    /// initializer's name mapped to the initializer it copies (for `shareIdenticalCopies`).
    @discardableResult
    public func identityInitializersToCopies() -> [String: String] {
        let graphOutputs = Set(outputs.map(\.name)), graphInputs = Set(inputs.map(\.name))
        var tensors = Dictionary(initializers.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        var copies: [String: String] = [:]
        var removed = Set<Int>()
        for (i, n) in nodes.enumerated() where n.isDefaultDomain && n.opType == "Identity" && n.inputs.count == 1 && n.outputs.count == 1 {
            let source = n.inputs[0], name = n.outputs[0]
            guard let tensor = tensors[source], !graphInputs.contains(source), !graphOutputs.contains(name), tensors[name] == nil else { continue }
            initializers.append(Initializer(name: name, tensor: tensor))
            tensors[name] = tensor
            copies[name] = copies[source] ?? source
            removed.insert(i)
        }
        removeNodes(at: removed)
        return copies
    }

    /// Where an initializer and its copies (`copies`: copy name → source name, as returned by
    /// `identityInitializersToCopies` and `unshareInitializers`, chains followed) still hold identical tensors, makes their readers read one
    /// of them and drops the others, so that a pass that changed only some copies leaves no
    /// duplicate storage behind.
    public func shareIdenticalCopies(_ copies: [String: String]) {
        guard !copies.isEmpty else { return }
        let index = Dictionary(initializers.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        var families: [String: [String]] = [:]
        for (copy, source) in copies.sorted(by: { $0.key < $1.key }) {
            var root = source, steps = 0
            while let next = copies[root], steps <= copies.count { root = next; steps += 1 }
            families[root, default: [root]].append(copy)
        }
        var renames: [String: String] = [:]
        for family in families.values {
            var keepers: [Tensor] = [], keeperNames: [String] = []
            for name in family {
                guard let i = index[name] else { continue }
                let tensor = initializers[i].tensor
                if let k = keepers.firstIndex(where: { $0.dtype == tensor.dtype && $0.shape == tensor.shape && $0.bytes.elementsEqual(tensor.bytes) }) {
                    renames[name] = keeperNames[k]
                } else {
                    keepers.append(tensor)
                    keeperNames.append(name)
                }
            }
        }
        redirectReaders(renames)
        removeUnreadInitializers()
    }
}
