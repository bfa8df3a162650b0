import KerfCore
import KerfTestSupport
import KerfTrain
import XCTest

/// The learning rates of `schedule` from `base` for steps 0...steps (first group).
func learningRates(_ schedule: LearningRateSchedule, base: Double, steps: Int) throws -> [Double] {
    var scheduler = try LearningRateScheduler(schedule, baseLR: base)
    var rates = [scheduler.learningRate]
    for _ in 0..<steps {
        try scheduler.step()
        rates.append(scheduler.learningRate)
    }
    return rates
}

final class ScheduleTests: XCTestCase {
    func testConstant() throws {
        XCTAssertEqual(try learningRates(.constant, base: 0.3, steps: 3), [0.3, 0.3, 0.3, 0.3])
    }

    func testStepDecaysEveryStepSize() throws {
        XCTAssertEqual(try learningRates(.step(stepSize: 2, gamma: 0.5), base: 1, steps: 6), [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125])
    }

    func testMultiStepMilestones() throws {
        // Milestone 0 applies at construction; a repeated milestone decays by gamma^2.
        XCTAssertEqual(try learningRates(.multiStep(milestones: [3, 0, 3], gamma: 0.5), base: 1, steps: 5),
                       [0.5, 0.5, 0.5, 0.125, 0.125, 0.125])
    }

    func testExponential() throws {
        XCTAssertEqual(try learningRates(.exponential(gamma: 0.5), base: 2, steps: 3), [2, 1, 0.5, 0.25])
    }

    /// torch 2.13 CosineAnnealingLR(T_max=4, eta_min=0.001) from 0.1 (its recursive form).
    func testCosineAnnealingMatchesTorchAndReachesEtaMinAtTMax() throws {
        let rates = try learningRates(.cosineAnnealing(tMax: 4, etaMin: 0.001), base: 0.1, steps: 10)
        let torch = [0.1, 0.0855017856687341, 0.0505, 0.0154982143312659, 0.001, 0.015498214331265896,
                     0.05050000000000001, 0.08550178566873413, 0.10000000000000003, 0.08550178566873413, 0.05050000000000003]
        assertClose(rates, torch, relative: 1e-13)
        XCTAssertEqual(rates[4], 0.001)
        let one = try learningRates(.cosineAnnealing(tMax: 1), base: 0.5, steps: 4)
        assertClose(one, [0.5, 0, 0.5, 0, 0.5], absolute: 1e-15)
    }

    func testLinearWarmupThenLinearDecay() throws {
        let rates = try learningRates(.linearWarmup(warmupSteps: 4, totalSteps: 12), base: 1, steps: 14)
        XCTAssertEqual(Array(rates[0...4]), [0, 0.25, 0.5, 0.75, 1])
        XCTAssertEqual(rates[8], 0.5)
        XCTAssertEqual(Array(rates[12...]), [0, 0, 0])
        let floor = try learningRates(.linearWarmup(warmupSteps: 0, totalSteps: 10, finalFraction: 0.1), base: 2, steps: 12)
        XCTAssertEqual(floor[0], 2)
        XCTAssertEqual(floor[10], 0.2, accuracy: 1e-15)
        XCTAssertEqual(floor[12], 0.2, accuracy: 1e-15)
    }

    func testLinearWarmupThenCosineDecay() throws {
        let rates = try learningRates(.linearWarmup(warmupSteps: 2, totalSteps: 10, then: .cosine), base: 1, steps: 10)
        XCTAssertEqual(Array(rates[0...2]), [0, 0.5, 1])
        XCTAssertEqual(rates[6], 0.5, accuracy: 1e-15)  // half way through the decay
        XCTAssertEqual(rates[10], 0, accuracy: 1e-15)
        let floor = try learningRates(.linearWarmup(warmupSteps: 2, totalSteps: 10, then: .cosine, finalFraction: 0.25), base: 1, steps: 10)
        XCTAssertEqual(floor[6], 0.625, accuracy: 1e-15)
        XCTAssertEqual(floor[10], 0.25, accuracy: 1e-15)
    }

    func testSeveralGroupsFollowTheirOwnBases() throws {
        var scheduler = try LearningRateScheduler(.step(stepSize: 1, gamma: 0.5), baseLearningRates: [1, 4])
        try scheduler.step()
        XCTAssertEqual(scheduler.learningRates, [0.5, 2])
        XCTAssertEqual(scheduler.learningRate, 0.5)
        XCTAssertNil(scheduler.momenta)
    }

    func testInvalidSchedulesThrow() {
        let invalid: [LearningRateSchedule] = [
            .step(stepSize: 0), .step(stepSize: 1, gamma: -1), .multiStep(milestones: [-1]), .exponential(gamma: .nan),
            .cosineAnnealing(tMax: 0), .cosineAnnealing(tMax: 5, etaMin: -1),
            .linearWarmup(warmupSteps: -1, totalSteps: 5), .linearWarmup(warmupSteps: 1, totalSteps: 5, finalFraction: 2),
            .oneCycle(maxLR: 0.1, totalSteps: 0), .oneCycle(maxLR: -1, totalSteps: 10), .oneCycle(totalSteps: 10, pctStart: 1.5),
            .oneCycle(totalSteps: 10, pctStart: 0.1),  // a first phase of no length: torch divides by zero
            .oneCycle(totalSteps: 10, pctStart: 1),  // a last phase of no length
            .oneCycle(totalSteps: 10, divFactor: 0), .oneCycle(totalSteps: 10, baseMomentum: -0.5),
        ]
        for schedule in invalid {
            assertInvalidArgument(try LearningRateScheduler(schedule, baseLR: 0.1), "\(schedule)")
        }
        assertInvalidArgument(try LearningRateScheduler(.constant, baseLR: -0.1))
        assertInvalidArgument(try LearningRateScheduler(.constant, baseLearningRates: []))
    }
}
