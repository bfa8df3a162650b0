import XCTest
@testable import KerfKernels
#if canImport(Glibc)
import Glibc
#endif

/// The kernels that split work over threads give the same results at 1 and 2 threads, and
/// match a plain definition.
final class ParallelKernelTests: XCTestCase {
    /// out[i0, i1, ...] = in[...] with input axis perm[d] at output position d, element by element.
    private func naiveTranspose<T>(_ x: [T], shape: [Int], perm: [Int]) -> [T] {
        let rank = shape.count
        var strides = [Int](repeating: 1, count: rank)
        for d in stride(from: rank - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
        let outShape = perm.map { shape[$0] }
        var out: [T] = []
        for i in 0..<x.count {
            var rest = i, offset = 0
            for d in stride(from: rank - 1, through: 0, by: -1) {
                offset += (rest % outShape[d]) * strides[perm[d]]
                rest /= outShape[d]
            }
            out.append(x[offset])
        }
        return out
    }

    private func permutations(_ n: Int) -> [[Int]] {
        if n == 0 { return [[]] }
        return permutations(n - 1).flatMap { p in (0...p.count).map { i in var q = p; q.insert(n - 1, at: i); return q } }
    }

    func testTransposeMatchesTheDefinitionForEveryPermutationAndThreadCount() {
        // 4-byte and 1-byte elements take tiles when the innermost axis moves; 2-byte ones the odometer.
        func check<T: FixedWidthInteger>(_: T.Type) {
            for shape in [[3, 5, 7, 9], [2, 1, 40, 33], [70, 2, 300, 2], [1, 19, 4, 24], [1, 37, 3, 18]] {
                let x = (0..<shape.reduce(1, *)).map { T(truncatingIfNeeded: $0 &* 2654435761 % 1000003) }
                for perm in permutations(shape.count) {
                    let expected = naiveTranspose(x, shape: shape, perm: perm)
                    for threads in [1, 2] {
                        var out = [T](repeating: 0, count: x.count)
                        x.withUnsafeBytes { src in
                            out.withUnsafeMutableBytes { dst in
                                transpose(src.baseAddress!, shape: shape, perm: perm, elementSize: MemoryLayout<T>.size,
                                          output: dst.baseAddress!, threads: threads)
                            }
                        }
                        XCTAssertEqual(out, expected, "\(T.self) shape \(shape) perm \(perm) threads \(threads)")
                    }
                }
            }
        }
        check(UInt32.self)
        check(UInt8.self)
        check(UInt16.self)
    }

    func testSoftmaxRowsAgreeWithTheDefinitionAtOneAndTwoThreads() {
        for (outer, n, inner) in [(300, 128, 1), (7, 13, 1), (5, 9, 6), (2000, 33, 1)] {
            let x = (0..<(outer * n * inner)).map { Float(($0 * 7919) % 201) / 10 - 10 }
            var one = [Float](repeating: 0, count: x.count), two = one
            for log in [false, true] {
                softmax(x, &one, outer: outer, n: n, inner: inner, log: log, threads: 1)
                softmax(x, &two, outer: outer, n: n, inner: inner, log: log, threads: 2)
                XCTAssertEqual(one, two)
                for o in [0, outer - 1] {
                    for i in [0, inner - 1] {
                        let row = (0..<n).map { Double(x[(o * n + $0) * inner + i]) }
                        let m = row.max()!
                        let sum = row.map { Glibc.exp($0 - m) }.reduce(0, +)
                        for j in 0..<n {
                            let expected = log ? row[j] - m - Glibc.log(sum) : Glibc.exp(row[j] - m) / sum
                            XCTAssertEqual(Double(one[(o * n + j) * inner + i]), expected, accuracy: 1e-6 + 1e-5 * abs(expected))
                        }
                    }
                }
            }
        }
    }

    func testTeamRangesCoverEveryIndexOnceOnTheOpenMPTeam() {
        setGemmThreads(2)
        defer { setGemmThreads(1) }
        for (count, grain) in [(0, 1), (1, 1), (7, 4), (100, 1), (1000, 30)] {
            var hits = [Int](repeating: 0, count: count)
            let lock = NSLock()
            var ranges = 0
            hits.withUnsafeMutableBufferPointer { hits in
                teamRanges(count, grain: grain) { range in
                    lock.lock()
                    ranges += 1
                    lock.unlock()
                    XCTAssertGreaterThanOrEqual(range.count, min(grain, count))
                    for i in range { hits[i] += 1 }
                }
            }
            XCTAssertEqual(hits, [Int](repeating: 1, count: count), "count \(count) grain \(grain)")
            XCTAssertEqual(ranges, count / grain >= 2 ? 2 : min(count, 1), "count \(count) grain \(grain)")
        }
    }

    func testParallelRangesUseTheOpenMPTeamOnlyInsideWithTeamKernels() {
        setGemmThreads(2)
        defer { setGemmThreads(1) }
        func ranges(_ count: Int) -> (count: Int, hits: [Int]) {
            var hits = [Int](repeating: 0, count: count)
            let lock = NSLock()
            var ranges = 0
            hits.withUnsafeMutableBufferPointer { hits in
                parallelRanges(count, threads: 2, grain: 30) { range in
                    lock.lock()
                    ranges += 1
                    lock.unlock()
                    for i in range { hits[i] += 1 }
                }
            }
            return (ranges, hits)
        }
        // The pool takes up to four ranges per thread; the team one range per thread.
        let pooled = ranges(1000)
        let team = withTeamKernels { withTeamKernels { ranges(1000) } }
        let after = ranges(1000)
        XCTAssertEqual(pooled.hits, [Int](repeating: 1, count: 1000))
        XCTAssertEqual(team.hits, [Int](repeating: 1, count: 1000))
        XCTAssertEqual(pooled.count, 8)
        XCTAssertEqual(team.count, 2)
        XCTAssertEqual(after.count, 8, "the setting ends with the outermost withTeamKernels")
    }

    func testClaimedIndicesRunOnceEachOnTheOpenMPTeamInsideWithTeamKernels() {
        setGemmThreads(2)
        defer { setGemmThreads(1) }
        for count in [0, 1, 5, 100] {
            var hits = [Int](repeating: 0, count: count)
            let lock = NSLock()
            var workers = Set<Int>()
            hits.withUnsafeMutableBufferPointer { hits in
                withTeamKernels {
                    parallelForClaimed(count, threads: 2) { worker, index in
                        lock.lock()
                        workers.insert(worker)
                        lock.unlock()
                        hits[index] += 1
                    }
                }
            }
            XCTAssertEqual(hits, [Int](repeating: 1, count: count), "count \(count)")
            XCTAssertTrue(workers.isSubset(of: [0, 1]), "count \(count): workers \(workers)")
            XCTAssertEqual(workers.count, min(count, 2), "count \(count)")
        }
    }
}
