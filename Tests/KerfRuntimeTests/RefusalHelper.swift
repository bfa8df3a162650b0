import XCTest
@testable import KerfCore
@testable import KerfRuntime

extension XCTestCase {
    /// The KerfError that creating a session for `graph` (opset 17 unless given) or running it on
    /// `feeds` throws; fails the test, returning nil, when it runs or throws anything else.
    func refusal(of graph: Graph, feeds: [String: Tensor], options: SessionOptions,
                 opsets: [OpsetImport] = [OpsetImport(domain: "", version: 17)],
                 file: StaticString = #filePath, line: UInt = #line) -> KerfError? {
        do {
            let session = try Session(graph: graph, opsets: opsets, options: options)
            _ = try session.run(feeds)
            XCTFail("ran", file: file, line: line)
        } catch let e as KerfError {
            return e
        } catch {
            XCTFail("not a KerfError: \(error)", file: file, line: line)
        }
        return nil
    }
}
