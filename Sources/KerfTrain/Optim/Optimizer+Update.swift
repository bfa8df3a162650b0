import KerfCore

extension Optimizer {
    /// One optimizer step of parameter `name`: updates `parameter` in place from `gradient`
    /// with the hyperparameters of the parameter's group, and updates its state. Both buffers
    /// hold the parameter's element count (row-major, its registered shape) and must not
    /// overlap; `gradient` is not modified. Throws `.invalidArgument` for an unknown name,
    /// `.shapeMismatch` for a wrong count, `.outOfMemory` when the state cannot be allocated;
    /// nothing is changed then.
    public func update(_ name: String, parameter: UnsafeMutableBufferPointer<Float>, gradient: UnsafeBufferPointer<Float>) throws {
        guard let count = elementCounts[name], let shape = parameterShapes[name] else {
            throw KerfError.invalidArgument("optimizer: no parameter named '\(name)'")
        }
        guard parameter.count == count, gradient.count == count else {
            throw KerfError.shapeMismatch("optimizer: parameter '\(name)' has \(count) elements; got a parameter buffer of \(parameter.count) and a gradient of \(gradient.count)")
        }
        let group = groupOfParameter[name] ?? 0
        var state = states.removeValue(forKey: name) ?? ParameterState()
        defer { states[name] = state }
        switch kind {
        case .sgd(let options):
            try sgdUpdate(options, group: group, shape: shape, state: &state, parameter, gradient)
        case .adam(let options):
            try adamUpdate(options, group: group, shape: shape, state: &state, parameter, gradient)
        }
    }

    private func sgdUpdate(_ options: SGD, group: Int, shape: [Int], state: inout ParameterState,
                           _ parameter: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) throws {
        let constants = SGDStepConstants(options, learningRate: learningRates[group], weightDecay: weightDecays[group],
                                         momentum: momenta[group])
        guard let p = parameter.baseAddress, let g = gradient.baseAddress else { return }
        if momenta[group] == 0 {
            sgdStep(parameter: p, gradient: g, momentumBuffer: nil, firstStep: false, count: parameter.count,
                    constants: constants, threads: threads)
            return
        }
        let firstStep = state.momentumBuffer == nil
        if firstStep { state.momentumBuffer = try Tensor(uninitialized: .float, shape: shape) }
        withMutableFloats(&state.momentumBuffer) { buffer in
            sgdStep(parameter: p, gradient: g, momentumBuffer: buffer, firstStep: firstStep, count: parameter.count,
                    constants: constants, threads: threads)
        }
    }

    private func adamUpdate(_ options: Adam, group: Int, shape: [Int], state: inout ParameterState,
                            _ parameter: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) throws {
        if state.expAvg == nil || state.expAvgSq == nil || (options.amsgrad && state.maxExpAvgSq == nil) {
            let m = try Tensor(zeros: .float, shape: shape), v = try Tensor(zeros: .float, shape: shape)
            let vmax = options.amsgrad ? try Tensor(zeros: .float, shape: shape) : nil
            state = ParameterState(step: 0, expAvg: m, expAvgSq: v, maxExpAvgSq: vmax)
        }
        state.step += 1
        let constants = AdamStepConstants(options, learningRate: learningRates[group], weightDecay: weightDecays[group],
                                          beta1: momenta[group], step: state.step)
        guard let p = parameter.baseAddress, let g = gradient.baseAddress else { return }
        let count = parameter.count
        withMutableFloats(&state.expAvg) { m in
            withMutableFloats(&state.expAvgSq) { v in
                withMutableFloats(&state.maxExpAvgSq) { vmax in
                    guard let m, let v else { return }
                    adamStep(parameter: p, gradient: g, expAvg: m, expAvgSq: v,
                             maxExpAvgSq: options.amsgrad ? vmax : nil, count: count, constants: constants, threads: threads)
                }
            }
        }
    }
}

/// Calls body with the float elements of `tensor` (nil when there is no tensor or it is
/// empty), owned uniquely for the call: shared storage is copied first.
func withMutableFloats<R>(_ tensor: inout Tensor?, _ body: (UnsafeMutablePointer<Float>?) throws -> R) rethrows -> R {
    guard var t = tensor else { return try body(nil) }
    tensor = nil
    defer { tensor = t }
    return try t.withMutableElements(as: Float.self) { try body($0.count == 0 ? nil : $0.baseAddress) }
}
