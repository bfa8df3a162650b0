import FoundationEssentials
import KerfCore

// Trilu (opset 14): the upper (upper=1, the default) or lower triangle of each matrix in the
// last two dims, the diagonal shifted by the optional int64 input k; the rest is zero.

/// The columns of row `row` (of `columns`) that Trilu sets to zero.
private func clearedColumns(row: Int, columns: Int, k: Int, upper: Bool) -> Range<Int> {
    let edge = row + k  // the diagonal's column in this row
    if upper { return 0..<Swift.min(Swift.max(edge, 0), columns) }
    return Swift.min(Swift.max(edge + 1, 0), columns)..<columns
}

/// Trilu of `x` (rank >= 2, any dtype): x's shape and dtype, zero (empty strings) outside the triangle.
func trilu(_ x: Tensor, k rawK: Int, upper: Bool) throws -> Tensor {
    guard x.rank >= 2 else { throw KerfError.invalidArgument("Trilu needs an input of rank >= 2, got \(x.shape)") }
    let rows = x.shape[x.rank - 2], columns = x.shape[x.rank - 1]
    let k = Swift.min(Swift.max(rawK, -rows - 1), columns + 1)  // beyond these, every k acts alike
    let matrices = rows * columns == 0 ? 0 : x.count / (rows * columns)
    if x.dtype == .string {
        guard x.strings.count == x.count else { throw KerfError.invalidArgument("string tensor has the wrong number of elements") }
        var strings = x.strings
        for m in 0..<matrices {
            for row in 0..<rows {
                for c in clearedColumns(row: row, columns: columns, k: k, upper: upper) { strings[(m * rows + row) * columns + c] = Data() }
            }
        }
        return Tensor(shape: x.shape, strings: strings)
    }
    struct Clear: ByteElementBody {
        let x: Tensor, rows: Int, columns: Int, matrices: Int, k: Int, upper: Bool
        func run<E>(_: E.Type) throws -> Tensor {
            var out = x
            out.withMutableElements(as: E.self) { elements in
                let bytes = UnsafeMutableRawBufferPointer(elements)
                for m in 0..<matrices {
                    for row in 0..<rows {
                        let cleared = clearedColumns(row: row, columns: columns, k: k, upper: upper)
                        guard !cleared.isEmpty else { continue }
                        let start = ((m * rows + row) * columns + cleared.lowerBound) * MemoryLayout<E>.stride
                        (bytes.baseAddress! + start).initializeMemory(as: UInt8.self, repeating: 0, count: cleared.count * MemoryLayout<E>.stride)
                    }
                }
            }
            return out
        }
    }
    return try dispatchBytes(x.dtype, "Trilu", Clear(x: x, rows: rows, columns: columns, matrices: matrices, k: k, upper: upper))
}

enum TriluOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Trilu"] = { c in
            let upper = try c.int("upper", default: 1) != 0
            return ClosureOperator { inputs in
                var k = 0
                if let kTensor = inputs.optional(1) ?? nil {
                    let ks = try intValues(kTensor, "Trilu k")
                    guard ks.count == 1 else { throw KerfError.invalidArgument("Trilu k must hold one value, got \(ks.count)") }
                    k = ks[0]
                }
                return [try trilu(try inputs.required(0), k: k, upper: upper)]
            }
        }
    }
}
