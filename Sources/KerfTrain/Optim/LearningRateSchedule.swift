import KerfCore

/// How a value moves from a start to an end as progress goes from 0 to 1.
public enum Annealing: String, Equatable, Sendable {
    case linear
    /// Half a cosine: end + (start - end) / 2 * (1 + cos(pi * progress)).
    case cosine
}

/// A learning-rate schedule: the rule by which a `LearningRateScheduler` sets each parameter
/// group's learning rate before every optimizer step. Steps count the scheduler's `step()`
/// calls (torch's `last_epoch`); step 0 is the first optimizer step. Each case is the torch
/// scheduler it names, computed in float64 as torch computes it (the recursive `get_lr` form
/// where torch has one), per group from the group's base learning rate.
public enum LearningRateSchedule: Equatable, Sendable {
    /// The base learning rate throughout.
    case constant
    /// StepLR: multiplied by `gamma` every `stepSize` steps (>= 1).
    case step(stepSize: Int, gamma: Double = 0.1)
    /// MultiStepLR: multiplied by `gamma` at each milestone (>= 0); a milestone listed n times
    /// multiplies by gamma^n; milestone 0 applies to the first step.
    case multiStep(milestones: [Int], gamma: Double = 0.1)
    /// ExponentialLR: multiplied by `gamma` every step.
    case exponential(gamma: Double)
    /// CosineAnnealingLR in torch's recursive form: from the base rate down to `etaMin` at
    /// step `tMax` (>= 1), back up to the base rate at 2 * tMax, and so on.
    case cosineAnnealing(tMax: Int, etaMin: Double = 0)
    /// Linear warmup from 0 over `warmupSteps`, then decay to `finalFraction` (in [0, 1]) of
    /// the base rate at `totalSteps`: transformers' get_linear_schedule_with_warmup /
    /// get_cosine_schedule_with_warmup (half a cosine) as a LambdaLR, and with a non-zero
    /// `finalFraction` get_cosine_with_min_lr_schedule_with_warmup (min_lr_rate). After
    /// `totalSteps` linear decay stays at the final rate, cosine decay rises again as
    /// transformers' does.
    case linearWarmup(warmupSteps: Int, totalSteps: Int, then: Annealing = .linear, finalFraction: Double = 0)
    /// OneCycleLR: from maxLR / divFactor up to `maxLR` over the first `pctStart` of
    /// `totalSteps` (>= 1), then down to maxLR / divFactor / finalDivFactor (with `threePhase`,
    /// back to maxLR / divFactor first, symmetrically). A nil `maxLR` takes each group's base
    /// learning rate as its maximum (torch's list of max_lr). With `cycleMomentum` the
    /// momentum (SGD) or beta1 (Adam) moves inversely between `maxMomentum` and
    /// `baseMomentum`. Stepping past `totalSteps` throws, as torch raises.
    case oneCycle(maxLR: Double? = nil, totalSteps: Int, pctStart: Double = 0.3, annealing: Annealing = .cosine,
                  divFactor: Double = 25, finalDivFactor: Double = 1e4, threePhase: Bool = false,
                  cycleMomentum: Bool = true, baseMomentum: Double = 0.85, maxMomentum: Double = 0.95)

    /// Throws `.invalidArgument` for options torch would refuse or fail on (a division by
    /// zero), and for non-finite values.
    public func validate() throws {
        switch self {
        case .constant:
            break
        case let .step(stepSize, gamma):
            guard stepSize >= 1 else { throw KerfError.invalidArgument("step schedule: stepSize must be >= 1, got \(stepSize)") }
            try requireNonNegative(gamma, "step schedule gamma")
        case let .multiStep(milestones, gamma):
            if let bad = milestones.first(where: { $0 < 0 }) {
                throw KerfError.invalidArgument("multi-step schedule: milestones must be >= 0, got \(bad)")
            }
            try requireNonNegative(gamma, "multi-step schedule gamma")
        case let .exponential(gamma):
            try requireNonNegative(gamma, "exponential schedule gamma")
        case let .cosineAnnealing(tMax, etaMin):
            guard tMax >= 1, tMax <= Int.max / 4 else {
                throw KerfError.invalidArgument("cosine annealing schedule: tMax must be >= 1, got \(tMax)")
            }
            try requireNonNegative(etaMin, "cosine annealing schedule etaMin")
        case let .linearWarmup(warmupSteps, totalSteps, _, finalFraction):
            guard warmupSteps >= 0, totalSteps >= 0 else {
                throw KerfError.invalidArgument("warmup schedule: warmupSteps and totalSteps must be >= 0, got \(warmupSteps) and \(totalSteps)")
            }
            guard finalFraction >= 0, finalFraction <= 1 else {
                throw KerfError.invalidArgument("warmup schedule: finalFraction must be in [0, 1], got \(finalFraction)")
            }
        case let .oneCycle(maxLR, totalSteps, pctStart, _, divFactor, finalDivFactor, _, cycleMomentum, baseMomentum, maxMomentum):
            guard totalSteps >= 1 else { throw KerfError.invalidArgument("one-cycle schedule: totalSteps must be >= 1, got \(totalSteps)") }
            guard pctStart >= 0, pctStart <= 1 else {
                throw KerfError.invalidArgument("one-cycle schedule: pctStart must be in [0, 1], got \(pctStart)")
            }
            if let maxLR { try requireNonNegative(maxLR, "one-cycle schedule maxLR") }
            guard divFactor.isFinite, divFactor > 0, finalDivFactor.isFinite, finalDivFactor > 0 else {
                throw KerfError.invalidArgument("one-cycle schedule: divFactor and finalDivFactor must be finite and > 0, got \(divFactor) and \(finalDivFactor)")
            }
            if cycleMomentum {
                try requireNonNegative(baseMomentum, "one-cycle schedule baseMomentum")
                try requireNonNegative(maxMomentum, "one-cycle schedule maxMomentum")
            }
            var start = 0.0
            for (i, phase) in oneCyclePhases().enumerated() {
                guard phase.end != start else {
                    throw KerfError.invalidArgument("one-cycle schedule: phase \(i + 1) has no length (pctStart \(pctStart) of \(totalSteps) steps); torch divides by zero there")
                }
                start = phase.end
            }
        }
    }
}
