import XCTest
@testable import KerfCore
@testable import KerfRuntime
import KerfTestSupport

/// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss against their definitions, natively (the
/// Python tests compare them with ONNX Runtime through the C ABI).
final class ClassificationLossTests: XCTestCase {
    // logProb [n 2, c 3, d 2], labels [2, 2] with one ignored (-1), weights per class.
    let logProb = Tensor(shape: [2, 3, 2], values: [Float](arrayLiteral: -1, -2, -3, -4, -5, -6, -0.5, -1.5, -2.5, -3.5, -4.5, -5.5))
    let labels = Tensor(shape: [2, 2], values: [Int64(2), 0, -1, 1])
    let weight = Tensor(shape: [3], values: [Float(0.5), 2, 4])

    func testEachReductionWeighsAndIgnoresAsDefined() throws {
        // Samples (i, j): (0,0) label 2 -> -(-5) * 4 = 20; (0,1) label 0 -> -(-2) * 0.5 = 1;
        // (1,0) ignored -> 0; (1,1) label 1 -> -(-3.5) * 2 = 7. Weights 4, 0.5, 0, 2.
        let none = try negativeLogLikelihoodLoss(logProb, labels: labels, weight: weight, reduction: .none, ignoreIndex: -1)
        XCTAssertEqual(none.shape, [2, 2])
        XCTAssertEqual(none.array(of: Float.self), [20, 1, 0, 7])
        let sum = try negativeLogLikelihoodLoss(logProb, labels: labels, weight: weight, reduction: .sum, ignoreIndex: -1)
        XCTAssertEqual(sum.shape, [])
        XCTAssertEqual(sum.array(of: Float.self), [28])
        let mean = try negativeLogLikelihoodLoss(logProb, labels: labels, weight: weight, reduction: .mean, ignoreIndex: -1)
        XCTAssertEqual(mean.array(of: Float.self)[0], 28 / 6.5, accuracy: 1e-6)
        // Without weights, the mean is over the samples not ignored.
        let plain = try negativeLogLikelihoodLoss(logProb, labels: labels, weight: nil, reduction: .mean, ignoreIndex: -1)
        XCTAssertEqual(plain.array(of: Float.self)[0], (5 + 2 + 3.5) / 3, accuracy: 1e-6)
    }

    func testALabelOutsideTheClassesThrowsInsteadOfReadingPastTheRow() {
        for bad in [Int64(3), -1, Int64.min, Int64.max] {
            let t = Tensor(shape: [2, 2], values: [Int64(0), bad, 1, 1])
            XCTAssertThrowsError(try negativeLogLikelihoodLoss(logProb, labels: t, weight: nil, reduction: .sum, ignoreIndex: nil)) { e in
                XCTAssertTrue("\(e)".contains("outside [0, 3)"), "\(e)")
            }
        }
    }

    func testSoftmaxCrossEntropyIsTheLossOfTheLogSoftmaxOverClasses() throws {
        let scores = Tensor(shape: [2, 3, 2], values: SeededGenerator(seed: 7).floats(12))
        let logProb = try logSoftmaxOverClasses(scores)
        let x = scores.array(of: Float.self), y = logProb.array(of: Float.self)
        for i in 0..<2 {
            for j in 0..<2 {
                let row = (0..<3).map { Double(x[(i * 3 + $0) * 2 + j]) }
                let logSum = log(row.map { exp($0) }.reduce(0, +))
                for k in 0..<3 { XCTAssertEqual(Double(y[(i * 3 + k) * 2 + j]), row[k] - logSum, accuracy: 1e-5) }
            }
        }
    }
}
