#if canImport(Glibc)
import Glibc
#endif

/// One phase of torch's OneCycleLR: up to step `end` (a float, as torch computes it) the
/// learning rate moves from `startLR` to `endLR` and the momentum from `startMomentum` to
/// `endMomentum`.
struct OneCyclePhase {
    enum Level { case initial, max, min }
    enum MomentumLevel { case base, max }
    var end: Double
    var startLR: Level, endLR: Level
    var startMomentum: MomentumLevel, endMomentum: MomentumLevel
}

extension LearningRateSchedule {
    /// The phases of a one-cycle schedule, as torch's `_schedule_phases`; empty for others.
    func oneCyclePhases() -> [OneCyclePhase] {
        guard case let .oneCycle(_, totalSteps, pctStart, _, _, _, threePhase, _, _, _) = self else { return [] }
        let total = Double(totalSteps)
        if threePhase {
            return [
                OneCyclePhase(end: pctStart * total - 1, startLR: .initial, endLR: .max, startMomentum: .max, endMomentum: .base),
                OneCyclePhase(end: 2 * pctStart * total - 2, startLR: .max, endLR: .initial, startMomentum: .base, endMomentum: .max),
                OneCyclePhase(end: total - 1, startLR: .initial, endLR: .min, startMomentum: .max, endMomentum: .max),
            ]
        }
        return [
            OneCyclePhase(end: pctStart * total - 1, startLR: .initial, endLR: .max, startMomentum: .max, endMomentum: .base),
            OneCyclePhase(end: total - 1, startLR: .max, endLR: .min, startMomentum: .base, endMomentum: .max),
        ]
    }
}

/// torch's OneCycleLR.get_lr for one group at step `step` (<= totalSteps) of `schedule` (a
/// `.oneCycle`): the learning rate and, with cycleMomentum, the momentum. `maxLR` is the
/// group's maximum learning rate.
func oneCycleValues(_ schedule: LearningRateSchedule, step: Int, maxLR: Double) -> (lr: Double, momentum: Double?) {
    guard case let .oneCycle(_, _, _, annealing, divFactor, finalDivFactor, _, cycleMomentum, baseMomentum, maxMomentum) = schedule else {
        return (maxLR, nil)
    }
    let initialLR = maxLR / divFactor
    let minLR = initialLR / finalDivFactor
    func lr(_ level: OneCyclePhase.Level) -> Double {
        switch level {
        case .initial: return initialLR
        case .max: return maxLR
        case .min: return minLR
        }
    }
    func momentum(_ level: OneCyclePhase.MomentumLevel) -> Double { level == .base ? baseMomentum : maxMomentum }
    let phases = schedule.oneCyclePhases()
    let t = Double(step)
    var start = 0.0
    for (i, phase) in phases.enumerated() {
        if t <= phase.end || i == phases.count - 1 {
            let pct = (t - start) / (phase.end - start)
            let value = anneal(annealing, from: lr(phase.startLR), to: lr(phase.endLR), pct)
            let m = cycleMomentum ? anneal(annealing, from: momentum(phase.startMomentum), to: momentum(phase.endMomentum), pct) : nil
            return (value, m)
        }
        start = phase.end
    }
    return (initialLR, nil)  // not reached: the last phase always matches
}

/// torch's OneCycleLR `_annealing_cos` / `_annealing_linear`.
func anneal(_ annealing: Annealing, from start: Double, to end: Double, _ pct: Double) -> Double {
    switch annealing {
    case .cosine:
        let cosOut = cos(Double.pi * pct) + 1
        return end + (start - end) / 2.0 * cosOut
    case .linear:
        return (end - start) * pct + start
    }
}
