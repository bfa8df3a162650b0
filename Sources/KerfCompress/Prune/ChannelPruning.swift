import KerfCore

/// Structured pruning: removes `options.sparsity` of the channels of every group of tied
/// Conv filters / Gemm-MatMul output units that can be removed exactly, and rewrites every
/// reader of those channels (next Conv / Gemm / MatMul, BatchNorm, biases, per-channel
/// constants, depthwise Conv, Reshape targets, declared shapes; shapes nobody declared are
/// inferred, see `Graph.inferTypes`). Groups Kerf cannot prove safe
/// are left whole and listed in `report.skipped` with the reason.
///
/// The graph is changed only at the end, after every new tensor is built: on a throw the
/// model is as it was. One progress step per group of tied channels.
func pruneChannels(_ model: Model, options: PruneOptions, report: inout PruneReport, progress: ProgressHandler?) throws {
    let graph = model.graph
    // Before IR 4 every initializer is also listed as an input, and is still a constant.
    let fixed = model.irVersion < 4
    let found = ChannelAnalysis.analyze(graph, options: options, opset: model.defaultOpset, initializersAreConstant: fixed)

    var plans: [Int: ChannelPlan] = [:]
    var skipped: [(group: [Int], reason: String)] = []
    try advance(progress, 0, found.groups.count, "channel pruning")
    for (g, group) in found.groups.enumerated() {
        // The step of the previous group ends here (its iteration may `continue`).
        if g > 0 { try advance(progress, g, found.groups.count, found.name(of: found.groups[g - 1])) }
        let problems = found.problems(of: group)
        if !problems.isEmpty {
            skipped.append((group, problems.joined(separator: "; ")))
            continue
        }
        let channels = found.spaces[group[0]].channels
        let remove = channelsToRemove(channels, sparsity: options.sparsity, multiple: options.channelMultiple)
        guard remove > 0 else {
            let what = found.isAttentionHeads(group) ? "head" : "channel"
            skipped.append((group, "no \(what) of \(channels) to remove at sparsity \(options.sparsity)"))
            continue
        }
        let scores = try channelScores(of: group, in: found, criterion: options.channelCriterion)
        plans[group[0]] = ChannelPlan(channels: channels, keep: channelsToKeep(scores: scores, remove: remove))
    }
    if let last = found.groups.last { try advance(progress, found.groups.count, found.groups.count, found.name(of: last)) }
    // Q/K/V projections whose units go per attention head are not reported as left alone
    // (the head space may be tied to others: its group has the plan).
    let planned = Set(found.groups.filter { plans[$0[0]] != nil }.joined())
    for (group, reason) in skipped where !group.allSatisfy({ found.spaces[$0].heads.map { planned.contains($0) } ?? false }) {
        report.skipped.append(PruneReport.Skipped(name: found.name(of: group), reason: reason))
    }

    let rewrite = try channelRewrite(graph, found: found, plans: plans)
    for initializer in graph.initializers {
        guard let t = rewrite.tensors[initializer.name], let node = rewrite.readers[initializer.name] else { continue }
        report.tensors.append(entry(name: initializer.name, node: graph.nodes[node], before: initializer.tensor, after: t))
    }

    // Commit.
    for i in graph.initializers.indices {
        if let t = rewrite.tensors[graph.initializers[i].name] { graph.initializers[i].tensor = t }
    }
    for (i, n) in rewrite.nodes { graph.nodes[i] = n }
    graph.valueInfo = rewrite.valueInfo
    for i in graph.inputs.indices {
        if let t = rewrite.tensors[graph.inputs[i].name] {
            graph.inputs[i].type = .tensor(dtype: t.dtype, shape: t.shape.map { .value($0) })
        }
    }
}
