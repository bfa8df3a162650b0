import KerfCore
import KerfTestSupport
import KerfTrain
import XCTest

final class ScheduleStateTests: XCTestCase {
    func testRoundTripContinuesIdentically() throws {
        let schedules: [LearningRateSchedule] = [
            .cosineAnnealing(tMax: 7, etaMin: 1e-4), .multiStep(milestones: [2, 5]),
            .linearWarmup(warmupSteps: 3, totalSteps: 20, then: .cosine), .oneCycle(maxLR: 0.3, totalSteps: 20),
        ]
        for schedule in schedules {
            var uninterrupted = try LearningRateScheduler(schedule, baseLearningRates: [0.1, 0.05])
            for _ in 0..<5 { try uninterrupted.step() }
            let state = uninterrupted.state()
            var resumed = try LearningRateScheduler(schedule, baseLearningRates: [0.1, 0.05])
            try resumed.restore(state)
            XCTAssertEqual(resumed, uninterrupted)
            for _ in 0..<10 {
                try uninterrupted.step()
                try resumed.step()
                XCTAssertEqual(resumed.learningRates, uninterrupted.learningRates, "\(schedule)")
                XCTAssertEqual(resumed.momenta, uninterrupted.momenta, "\(schedule)")
            }
        }
    }

    func testInvalidStateThrowsAndChangesNothing() throws {
        var scheduler = try LearningRateScheduler(.oneCycle(maxLR: 0.3, totalSteps: 20), baseLR: 0.1)
        try scheduler.step()
        let good = scheduler.state()
        XCTAssertEqual(good["last_epoch"]?.array(of: Int64.self), [1])
        func variant(_ edit: (inout [String: Tensor]) -> Void) -> [String: Tensor] {
            var s = good
            edit(&s)
            return s
        }
        let bad: [[String: Tensor]] = [
            variant { $0["momenta"] = nil },
            variant { $0["extra"] = Tensor(scalar: 1.0) },
            variant { $0["last_epoch"] = Tensor(scalar: Int64(21)) },  // past totalSteps
            variant { $0["last_epoch"] = Tensor(scalar: Int64(-1)) },
            variant { $0["last_epoch"] = Tensor(scalar: 1.0) },
            variant { $0["lrs"] = Tensor(shape: [2], values: [0.1, 0.1]) },
            variant { $0["lrs"] = Tensor(shape: [1], values: [-0.1]) },
            variant { $0["base_lrs"] = Tensor(shape: [1], values: [Float(0.1)]) },
        ]
        let before = scheduler
        for (i, state) in bad.enumerated() {
            assertInvalidArgument(try scheduler.restore(state), "variant \(i)")
        }
        XCTAssertEqual(scheduler, before)
    }
}
