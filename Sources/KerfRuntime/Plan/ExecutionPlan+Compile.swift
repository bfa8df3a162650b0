import KerfCore
import KerfGraph

extension ExecutionPlan {
    /// Compiles `source` into a plan: checks node arity, applies graph optimizations (when
    /// `options.optimizationLevel` > 0), sorts the nodes and builds their operators. The plan's
    /// outputs are `source.outputs` followed by `retained` (values a run may return though they
    /// are no graph outputs; the optimizer keeps them). `irVersion` < 4: initializers are
    /// constants even where also declared as inputs. `source` is not mutated.
    static func compile(_ source: Graph, opsets: [OpsetImport], irVersion: Int, options: SessionOptions,
                        retained: [ValueInfo] = []) throws -> ExecutionPlan {
        let fixed = irVersion < 4 ? Set(source.initializers.map(\.name)) : []
        let declared = Dictionary(source.inputs.filter { !fixed.contains($0.name) }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })

        // Loading checks this too; a graph built in Swift is checked here. The graph passes
        // index the inputs and outputs of the nodes they match.
        try source.validateNodeArity()
        var graph = source
        if options.optimizationLevel > 0 {
            let visible = retained.isEmpty ? source : source.copy()
            visible.outputs += retained
            graph = try GraphOptimizer.optimize(visible, opsets: opsets, constantInitializers: irVersion < 4, options: options)
        }

        var builder = PlanBuilder(opsets: opsets, options: options, allowsFusedDomain: graph !== source)
        builder.addValues(of: graph, fedNames: Set(declared.keys))
        try builder.addSteps(graph.topologicalOrder())
        let inputs = source.runtimeInputs
        var targets: [String: ExecutionPlan.FeedTarget] = [:]
        let runtimeNames = Set(inputs.map(\.name))
        for (name, info) in declared {
            guard let slot = builder.slotOfName[name] else { continue }
            targets[name] = ExecutionPlan.FeedTarget(slot: slot, info: info, isRuntimeInput: runtimeNames.contains(name))
        }
        let removed = Set(source.nodes.flatMap(\.outputs)).subtracting(builder.slotOfName.keys)
        return try ExecutionPlan(inputs: inputs, outputs: graph.outputs, steps: builder.steps, slotOfName: builder.slotOfName,
                                 constants: builder.constants, takeable: builder.takeable, feedTargets: targets,
                                 initializerNames: Set(source.initializers.map(\.name)), removedNames: removed)
    }
}
