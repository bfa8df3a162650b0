import KerfCore
import KerfGraph

/// Builds an `ExecutionPlan`: assigns slots, builds each node's operator (giving it the
/// constants it may take), and hands the steps to the plan. Starting from an existing plan, it
/// appends steps to it and reuses what that plan prepared.
struct PlanBuilder {
    private(set) var slotOfName: [String: Int] = [:]
    private(set) var steps: [ExecutionPlan.Step] = []
    /// Every initializer's tensor, by slot (feeds may override those in `fed`).
    private(set) var constants: [Int: Tensor] = [:]
    /// Constants no feed can replace: operators may take them (`OperatorContext.takeConstant`).
    private(set) var takeable = Set<Int>()
    /// Constants an earlier plan's operators took: a new reader cannot have them.
    private(set) var gone = Set<Int>()
    let opsets: [OpsetImport]
    let options: SessionOptions
    /// True for the optimizer's private graph, whose fused operators need no opset import.
    let allowsFusedDomain: Bool

    init(opsets: [OpsetImport], options: SessionOptions, allowsFusedDomain: Bool) {
        self.opsets = opsets
        self.options = options
        self.allowsFusedDomain = allowsFusedDomain
    }

    /// A builder holding `plan`'s slots, steps and constants, to append to.
    init(extending plan: ExecutionPlan, opsets: [OpsetImport], options: SessionOptions) {
        self.init(opsets: opsets, options: options, allowsFusedDomain: true)
        slotOfName = plan.slotOfName
        steps = plan.steps
        constants = plan.constants
        takeable = plan.takeable
        gone = plan.taken
    }

    mutating func slot(_ name: String) -> Int {
        if let s = slotOfName[name] { return s }
        slotOfName[name] = slotOfName.count
        return slotOfName.count - 1
    }

    /// Slots for `g`'s initializers and inputs; `fedNames` are the inputs a feed may set.
    mutating func addValues(of g: Graph, fedNames: Set<String>) {
        for i in g.initializers { constants[slot(i.name)] = i.tensor }
        for i in g.inputs { _ = slot(i.name) }
        let fed = Set(fedNames.compactMap { slotOfName[$0] })
        takeable = Set(constants.keys).subtracting(fed)
    }

    /// Builds the operator of each node, in the order given (producers first).
    mutating func addSteps(_ nodes: [Node]) throws {
        let defaultOpset = opsets.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 0
        for node in nodes {
            // The values its subgraphs read by name follow the node's own inputs.
            let implicitInputs = node.hasSubgraph ? node.implicitInputs : []
            let inputSlots = (node.inputs + implicitInputs).map { $0.isEmpty ? -1 : slot($0) }
            if let k = inputSlots.firstIndex(where: { gone.contains($0) }) {
                throw KerfError.invalidArgument("\(node.label) reads '\(node.readNames[k])', a constant the session keeps only in a prepared form")
            }
            let known = inputSlots.map { $0 >= 0 ? constants[$0] : nil }
            let opset: Int
            if node.isDefaultDomain {
                opset = defaultOpset
            } else if let v = opsets.first(where: { $0.domain == node.domain })?.version {
                opset = v
            } else if node.domain == FusedQuantizedOps.domain && allowsFusedDomain {
                opset = 1  // the optimizer's own fused operators
            } else {
                throw KerfError.invalidModel("\(node.label) uses domain '\(node.domain)', which the model does not import")
            }
            let ownership = ConstantOwnership(takeable: Set(inputSlots.indices.filter { takeable.contains(inputSlots[$0]) }))
            let context = OperatorContext(node: node, opset: opset, constantInputs: known, options: options, ownership: ownership,
                                          implicitInputs: implicitInputs, opsets: opsets)
            let op: Operator
            do {
                op = try OperatorRegistry.makeOperator(context)
            } catch let e as KerfError {
                throw e.prefixed(node.label)
            }
            steps.append(ExecutionPlan.Step(node: node, op: op, lock: OperatorLock(), inputs: inputSlots, outputs: node.outputs.map { $0.isEmpty ? -1 : slot($0) },
                                            taken: ownership.taken))
        }
    }
}
