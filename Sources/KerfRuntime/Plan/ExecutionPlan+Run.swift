import KerfCore
import KerfGraph
import KerfKernels

extension ExecutionPlan {
    /// Runs the steps on `state` (fed: `bind`) and returns the values of `wantedSlots` (which
    /// `state.kept` must keep where a step would release them). Step times go to `profiler`
    /// while it is active.
    func execute(_ state: RunState, _ wantedSlots: [Int], profiler: StepProfiler?) throws -> [Tensor] {
        // Moved out of the state for the run (local arrays, no copies, no access checks).
        var values: [Tensor?] = [], args: [Tensor?] = []
        var recall = ShapeMemo.Recall()
        swap(&values, &state.values)
        swap(&args, &state.args)
        swap(&recall, &state.recall)
        var finished = false
        defer {
            swap(&values, &state.values)
            args.removeAll(keepingCapacity: true)
            swap(&args, &state.args)
            if !finished { recall.forget() }
            swap(&recall, &state.recall)
        }
        let memo = self.memo
        var reused = 0
        var stepSeconds: [Double]? = profiler?.isActive == true ? [Double](repeating: 0, count: steps.count) : nil
        let schedule = self.schedule, kept = state.kept
        let slots = schedule.slots, moves = schedule.moves, keeps = !state.keptSlots.isEmpty
        for index in schedule.entries.indices {
            let entry = schedule.entries[index]
            let memoized = memo.kinds[index] != ShapeMemo.notMemoized
            // A value the run returns is computed by the run, and not remembered.
            var asked = false
            if memoized && keeps {
                for s in slots[entry.outputs] where s >= 0 && kept[s] { asked = true }
            }
            if memoized && !asked, let cached = recall.reusable(index, memo) {
                for p in entry.releases where !(keeps && kept[slots[p]]) { values[slots[p]] = nil }
                for (k, t) in cached.enumerated() where k < entry.outputs.count && slots[entry.outputs.lowerBound + k] >= 0 {
                    values[slots[entry.outputs.lowerBound + k]] = t
                }
                reused += 1
                continue
            }
            for p in entry.inputs {
                let s = slots[p]
                if s < 0 {
                    args.append(nil)
                    continue
                }
                guard values[s] != nil else {
                    let node = steps[index].node
                    throw KerfError.invalidArgument("\(node.label): input '\(node.readNames[p - entry.inputs.lowerBound])' has no value (a missing feed?)")
                }
                // Moved, not copied, where this is the value's last read (no retain and release).
                args.append(moves[p] && !(keeps && kept[s]) ? values[s].take() : values[s])
            }
            // Values this step reads last are handed over: the operator may write over them.
            for p in entry.releases where !(keeps && kept[slots[p]]) { values[slots[p]] = nil }
            var results: [Tensor]
            let start = stepSeconds != nil ? monotonicSeconds() : 0
            do {
                results = try schedule.run(index, consuming: &args)
            } catch let e as KerfError {
                throw e.prefixed(steps[index].node.label)
            }
            if stepSeconds != nil { stepSeconds![index] += monotonicSeconds() - start }
            args.removeAll(keepingCapacity: true)
            if memoized { recall.record(index, memo, results, keep: !asked) }
            // Each result moves out of the array into its slot (last first).
            var k = results.count
            while k > 0 {
                k -= 1
                let result = results.removeLast()
                if k < entry.outputs.count, slots[entry.outputs.lowerBound + k] >= 0 { values[slots[entry.outputs.lowerBound + k]] = result }
            }
        }
        if let stepSeconds { profiler?.add(stepSeconds, reused: reused) }
        finished = true
        return try wantedSlots.map { s in
            guard let t = values[s] else {
                let name = slotOfName.first { $0.value == s }?.key ?? "#\(s)"
                throw KerfError.internal("output '\(name)' was not computed")
            }
            return t
        }
    }
}
