import Synchronization

/// Wall seconds per plan step, summed over the runs since profiling started. Runs time their
/// steps in a local array and add it here when they finish, so concurrent runs do not contend
/// per step.
final class StepProfiler: Sendable {
    private struct Totals {
        var seconds: [Double]
        var reused = 0
        var runs = 0
    }
    private let totals = Mutex<Totals?>(nil)
    private let active = Atomic<Bool>(false)

    /// True while profiling (read once per run).
    var isActive: Bool { active.load(ordering: .relaxed) }

    /// Starts (or restarts) timing, for a plan of `steps` steps.
    func start(steps: Int) {
        totals.withLock { $0 = Totals(seconds: [Double](repeating: 0, count: steps)) }
        active.store(true, ordering: .relaxed)
    }

    /// Adds one run's step times and the number of steps it skipped (`ShapeMemo`).
    func add(_ seconds: [Double], reused: Int) {
        totals.withLock { t in
            guard t != nil, t!.seconds.count == seconds.count else { return }
            for i in seconds.indices { t!.seconds[i] += seconds[i] }
            t!.reused += reused
            t!.runs += 1
        }
    }

    /// Mean number of steps per run that reused their previous outputs, or nil before any
    /// profiled run.
    func meanReused() -> Double? {
        totals.withLock { t in
            guard let t, t.runs > 0 else { return nil }
            return Double(t.reused) / Double(t.runs)
        }
    }

    /// Mean seconds per run of each step, or nil before any profiled run.
    func meanSeconds() -> [Double]? {
        totals.withLock { t in
            guard let t, t.runs > 0 else { return nil }
            return t.seconds.map { $0 / Double(t.runs) }
        }
    }
}
