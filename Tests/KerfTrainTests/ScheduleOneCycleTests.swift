import KerfCore
import KerfTestSupport
import KerfTrain
import XCTest

final class ScheduleOneCycleTests: XCTestCase {
    /// torch 2.13 OneCycleLR(max_lr=0.01, total_steps=10) on Adam: lr and beta1, steps 0...10.
    func testMatchesTorch() throws {
        var scheduler = try LearningRateScheduler(.oneCycle(maxLR: 0.01, totalSteps: 10), baseLR: 0.1)
        var rates = [scheduler.learningRate], momenta = [try XCTUnwrap(scheduler.momenta)[0]]
        for _ in 0..<10 {
            try scheduler.step()
            rates.append(scheduler.learningRate)
            momenta.append(try XCTUnwrap(scheduler.momenta)[0])
        }
        assertClose(rates, [0.0003999999999999993, 0.0052, 0.01, 0.009504846320134737, 0.008117456539497631, 0.0061126202193628925,
                            0.003887419780637108, 0.00188258346050237, 0.0004951936798652628, 4e-08, 0.0004951936798652623],
                    relative: 1e-13)
        assertClose(momenta, [0.95, 0.8999999999999999, 0.85, 0.854951556604879, 0.8688255099070633, 0.8888739533021842,
                              0.9111260466978157, 0.9311744900929366, 0.945048443395121, 0.95, 0.945048443395121], relative: 1e-13)
        // As torch, stepping past totalSteps throws (and changes nothing).
        assertInvalidArgument(try scheduler.step())
        XCTAssertEqual(scheduler.stepCount, 10)
    }

    func testPhasesLinearAndThreePhase() throws {
        let rates = try learningRates(.oneCycle(maxLR: 1, totalSteps: 11, pctStart: 0.5, annealing: .linear, divFactor: 4,
                                                finalDivFactor: 2, threePhase: true, cycleMomentum: false), base: 9, steps: 11)
        // Phase ends at 0.5 * 11 - 1 = 4.5, 2 * 0.5 * 11 - 2 = 9, 10: up to max, back to initial, down to min.
        XCTAssertEqual(rates[0], 0.25)
        XCTAssertEqual(rates[4], 0.25 + 0.75 * 4 / 4.5, accuracy: 1e-15)
        XCTAssertEqual(rates[9], 0.25, accuracy: 1e-15)
        XCTAssertEqual(rates[10], 0.125, accuracy: 1e-15)
    }

    func testWithoutMaxLREachGroupsBaseIsItsMaximum() throws {
        var scheduler = try LearningRateScheduler(.oneCycle(totalSteps: 20, pctStart: 0.5, cycleMomentum: false), baseLearningRates: [1, 0.5])
        assertClose(scheduler.learningRates, [1.0 / 25, 0.5 / 25], relative: 1e-14, "initial: max / divFactor")
        for _ in 0..<9 { try scheduler.step() }
        XCTAssertEqual(scheduler.learningRates, [1, 0.5])
        XCTAssertNil(scheduler.momenta)
    }

    func testApplySetsLearningRatesAndMomentumOfEveryGroup() throws {
        let sgd = try Optimizer(SGD(lr: 0.1), parameters: ["w": [1], "b": [1]], groups: [ParameterGroup(names: ["b"])])
        var scheduler = try LearningRateScheduler(.oneCycle(maxLR: 1, totalSteps: 10), optimizer: sgd)
        try scheduler.step()
        try scheduler.apply(to: sgd)
        XCTAssertEqual(sgd.learningRates, scheduler.learningRates)
        XCTAssertEqual(sgd.momenta, try XCTUnwrap(scheduler.momenta))
        // As torch, cycling gives a momentum-free SGD a momentum buffer.
        var w: [Float] = [1]
        try sgd.update("w", &w, [1])
        XCTAssertNotNil(sgd.state()["momentum_buffer/w"])

        let oneGroup = try Optimizer(Adam(), parameters: ["w": [1]])
        assertInvalidArgument(try scheduler.apply(to: oneGroup))
        let tooLarge = try LearningRateScheduler(.oneCycle(maxLR: 1, totalSteps: 10, maxMomentum: 1.5), optimizer: oneGroup)
        assertInvalidArgument(try tooLarge.apply(to: oneGroup))  // beta1 must stay below 1
        XCTAssertEqual(oneGroup.momenta, [0.9])
    }
}
