import KerfCore

extension ExecutionPlan {
    /// Puts each feed in its slot of `state` (one dictionary lookup per feed: this runs on
    /// every call) and records the slots in `state.bound`, so that `reset` finds them whether
    /// or not binding failed.
    func bind(_ feeds: [(name: String, tensor: Tensor)], into state: RunState) throws {
        var runtimeFeeds = 0
        for (name, tensor) in feeds {
            guard let target = feedTargets[name] else {
                if initializerNames.contains(name) {
                    throw KerfError.invalidArgument("'\(name)' is an initializer of an IR version < 4 model, where initializers are constants and cannot be fed")
                }
                let names = inputs.map { "'\($0.name)'" }.joined(separator: ", ")
                throw KerfError.invalidArgument("the model has no input named '\(name)' (inputs: \(names))")
            }
            guard !state.bound.contains(target.slot) else { throw KerfError.invalidArgument("input '\(name)' is fed twice") }
            try ExecutionPlan.check(tensor, against: target.info)
            state.values[target.slot] = tensor
            state.bound.append(target.slot)
            if target.isRuntimeInput { runtimeFeeds += 1 }
        }
        if runtimeFeeds < inputs.count {
            for info in inputs where !feeds.contains(where: { $0.name == info.name }) {
                throw KerfError.invalidArgument("input '\(info.name)' was not fed")
            }
        }
    }

    /// Checks a fed tensor against the declared dtype, rank and fixed dims.
    static func check(_ t: Tensor, against info: ValueInfo) throws {
        guard case .tensor(let dtype, let shape)? = info.type else {
            if let kind = { if case .other(let k)? = info.type { return k } else { return nil } }() {
                throw KerfError.unsupported("input '\(info.name)' is a \(kind), which Kerf cannot feed")
            }
            return
        }
        if let dtype, dtype != t.dtype {
            throw KerfError.shapeMismatch("input '\(info.name)' must be \(dtype), got \(t.dtype)")
        }
        guard let shape else { return }
        // The message is built only on failure: this check runs on every feed of every run.
        func declared() -> String { "[" + shape.map(\.description).joined(separator: ", ") + "]" }
        guard shape.count == t.rank else {
            throw KerfError.shapeMismatch("input '\(info.name)' must have rank \(shape.count) \(declared()), got shape \(t.shape)")
        }
        for (d, dim) in shape.enumerated() {
            if case .value(let v) = dim, v != t.shape[d] {
                throw KerfError.shapeMismatch("input '\(info.name)' must have shape \(declared()), got \(t.shape)")
            }
        }
    }
}
