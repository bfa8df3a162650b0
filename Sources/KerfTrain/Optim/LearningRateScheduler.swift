import KerfCore
#if canImport(Glibc)
import Glibc
#endif

/// Runs a `LearningRateSchedule` as a torch scheduler does: holds each parameter group's
/// current learning rate (and momentum, for a one-cycle schedule that cycles it), which
/// `step()` advances. A training loop takes the rates for an optimizer step, then steps:
///
///     var scheduler = try LearningRateScheduler(.cosineAnnealing(tMax: 100), optimizer: optimizer)
///     for _ in 0..<100 {
///         try scheduler.apply(to: optimizer)        // or read scheduler.learningRate
///         ... optimizer.update(...) for every parameter ...
///         try scheduler.step()
///     }
///
/// Values are float64, computed in the order of torch's Python code.
public struct LearningRateScheduler: Equatable, Sendable {
    public let schedule: LearningRateSchedule
    /// Each group's base learning rate (torch's `initial_lr`; for a one-cycle schedule without
    /// maxLR, the group's maximum).
    public internal(set) var baseLearningRates: [Double]
    /// Each group's learning rate for the next optimizer step.
    public internal(set) var learningRates: [Double]
    /// Each group's momentum (SGD) or beta1 (Adam) for the next optimizer step, when the
    /// schedule cycles it (one-cycle with cycleMomentum); nil otherwise.
    public internal(set) var momenta: [Double]?
    /// Times `step()` was called: torch's `last_epoch`.
    public internal(set) var stepCount: Int

    /// The first group's learning rate for the next optimizer step.
    public var learningRate: Double { learningRates[0] }

    /// A scheduler of one parameter group.
    public init(_ schedule: LearningRateSchedule, baseLR: Double) throws {
        try self.init(schedule, baseLearningRates: [baseLR])
    }

    /// A scheduler of `optimizer`'s groups, from their current learning rates (as a torch
    /// scheduler built on a fresh optimizer). Does not change the optimizer.
    public init(_ schedule: LearningRateSchedule, optimizer: Optimizer) throws {
        try self.init(schedule, baseLearningRates: optimizer.learningRates)
    }

    /// A scheduler of one group per base learning rate. Throws `.invalidArgument` for an
    /// invalid schedule, no groups, or a negative or non-finite rate.
    public init(_ schedule: LearningRateSchedule, baseLearningRates: [Double]) throws {
        try schedule.validate()
        guard !baseLearningRates.isEmpty else { throw KerfError.invalidArgument("learning-rate scheduler: no parameter groups") }
        for (g, lr) in baseLearningRates.enumerated() { try requireNonNegative(lr, "base learning rate of group \(g)") }
        self.schedule = schedule
        self.baseLearningRates = baseLearningRates
        stepCount = 0
        learningRates = baseLearningRates
        (learningRates, momenta) = values(at: 0)
    }

    /// Advances to the next optimizer step (torch's `scheduler.step()` after
    /// `optimizer.step()`). Throws `.invalidArgument`, changing nothing, when a one-cycle
    /// schedule would pass its totalSteps.
    public mutating func step() throws {
        if case let .oneCycle(_, totalSteps, _, _, _, _, _, _, _, _) = schedule, stepCount + 1 > totalSteps {
            throw KerfError.invalidArgument("one-cycle schedule: tried to step \(stepCount + 1) times; the schedule has \(totalSteps) steps")
        }
        stepCount += 1
        (learningRates, momenta) = values(at: stepCount)
    }

    /// Sets every group's learning rate (and momentum or beta1, when the schedule cycles it)
    /// in `optimizer`. Throws `.invalidArgument`, changing nothing, when the optimizer has a
    /// different number of groups or refuses a value (a beta1 outside [0, 1)).
    public func apply(to optimizer: Optimizer) throws {
        guard optimizer.groupCount == learningRates.count else {
            throw KerfError.invalidArgument("learning-rate scheduler: \(learningRates.count) groups, the optimizer has \(optimizer.groupCount)")
        }
        for (g, lr) in learningRates.enumerated() { try requireNonNegative(lr, "learning rate of group \(g)") }
        if let momenta { for m in momenta { try optimizer.kind.validateMomentum(m) } }
        optimizer.learningRates = learningRates
        if let momenta { optimizer.momenta = momenta }
    }

    /// Learning rates (and momenta) at step `t`, from the current ones where the schedule is
    /// recursive. At t == 0 this is torch's initial step in the constructor.
    func values(at t: Int) -> ([Double], [Double]?) {
        let current = learningRates, base = baseLearningRates
        switch schedule {
        case .constant:
            return (current, nil)
        case let .step(stepSize, gamma):
            if t == 0 || t % stepSize != 0 { return (current, nil) }
            return (current.map { $0 * gamma }, nil)
        case let .multiStep(milestones, gamma):
            let hits = milestones.reduce(0) { $0 + ($1 == t ? 1 : 0) }
            if hits == 0 { return (current, nil) }
            return (current.map { $0 * pow(gamma, Double(hits)) }, nil)
        case let .exponential(gamma):
            if t == 0 { return (current, nil) }
            return (current.map { $0 * gamma }, nil)
        case let .cosineAnnealing(tMax, etaMin):
            return (cosineAnnealingStep(t: t, tMax: tMax, etaMin: etaMin, base: base, current: current), nil)
        case let .linearWarmup(warmupSteps, totalSteps, decay, finalFraction):
            let factor = warmupFactor(t: t, warmup: warmupSteps, total: totalSteps, decay: decay, finalFraction: finalFraction)
            return (base.map { $0 * factor }, nil)
        case let .oneCycle(maxLR, _, _, _, _, _, _, cycleMomentum, _, _):
            let values = base.map { oneCycleValues(schedule, step: t, maxLR: maxLR ?? $0) }
            return (values.map(\.lr), cycleMomentum ? values.map { $0.momentum ?? 0 } : nil)
        }
    }
}

/// CosineAnnealingLR.get_lr at step t >= 0 (t == 0: the initial step, rates unchanged).
func cosineAnnealingStep(t: Int, tMax: Int, etaMin: Double, base: [Double], current: [Double]) -> [Double] {
    if t == 0 { return current }
    let T = Double(tMax)
    // Python's (t - 1 - T) % (2T): non-negative.
    let period = 2 * tMax, r = (t - 1 - tMax) % period
    if (r + period) % period == 0 {
        return zip(base, current).map { b, lr in lr + (b - etaMin) * (1 - cos(Double.pi / T)) / 2 }
    }
    let ratio = (1 + cos(Double.pi * Double(t) / T)) / (1 + cos(Double.pi * Double(t - 1) / T))
    return current.map { lr in ratio * (lr - etaMin) + etaMin }
}

/// The LambdaLR factor of transformers' warmup schedules at step t.
func warmupFactor(t: Int, warmup: Int, total: Int, decay: Annealing, finalFraction: Double) -> Double {
    if t < warmup { return Double(t) / Double(max(1, warmup)) }
    let decayed: Double
    switch decay {
    case .linear:
        decayed = pythonMax(0.0, Double(total - t) / Double(max(1, total - warmup)))
    case .cosine:
        let progress = Double(t - warmup) / Double(max(1, total - warmup))
        decayed = pythonMax(0.0, 0.5 * (1.0 + cos(Double.pi * 0.5 * 2.0 * progress)))
    }
    return decayed * (1 - finalFraction) + finalFraction
}

/// Python's max(a, b): a unless b > a (so max(0.0, -0.0) is 0.0).
func pythonMax(_ a: Double, _ b: Double) -> Double { b > a ? b : a }
