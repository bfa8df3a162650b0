/// A constant float matrix B, logically [K, N], stored compressed by output column (CSC of B,
/// which is CSR of Bᵀ): the nonzeros of column n are `values[columnStart[n]..<columnStart[n + 1]]`
/// at rows `rowIndex` of the same positions, in increasing row order.
///
/// Row indices are UInt16 when K <= 65536 (6 bytes per nonzero instead of 4 per dense entry, so
/// the form reads fewer bytes than dense from about 33% zeros on, and far fewer at 90%), UInt32
/// otherwise. The matrix owns copies of its values; the source buffer may be freed after `init`.
public struct SparseMatrix: Sendable {
    /// Indices of nonzero rows, narrow when K allows.
    public enum RowIndices: Sendable {
        case narrow([UInt16])
        case wide([UInt32])
    }

    /// K, the length of a column.
    public let rows: Int
    /// N, the number of output columns.
    public let columns: Int
    /// N + 1 offsets into `rowIndex` and `values`.
    public let columnStart: [Int]
    public let rowIndex: RowIndices
    public let values: [Float]

    public var nonzeroCount: Int { values.count }

    /// Compresses B. When `transposed` is false, B is stored row-major [K, N] with row stride `ld`
    /// (>= N); when true, B is stored as Bᵀ [N, K] with row stride `ld` (>= K), as Gemm's
    /// transB = 1 has it. Exact zeros (and -0) are dropped; NaN and infinity are kept.
    public init(_ b: UnsafePointer<Float>, rows k: Int, columns n: Int, transposed: Bool, ld: Int) {
        precondition(k >= 0 && n >= 0 && ld >= (transposed ? k : n), "SparseMatrix: bad shape or stride")
        @inline(__always) func entry(_ row: Int, _ column: Int) -> Float {
            transposed ? b[column * ld + row] : b[row * ld + column]
        }
        var start = [Int](repeating: 0, count: n + 1)
        for column in 0..<n {
            var count = 0
            for row in 0..<k where entry(row, column) != 0 { count += 1 }
            start[column + 1] = start[column] + count
        }
        var values = [Float](repeating: 0, count: start[n])
        var indices = [UInt32](repeating: 0, count: start[n])
        for column in 0..<n {
            var p = start[column]
            for row in 0..<k {
                let v = entry(row, column)
                if v != 0 {
                    values[p] = v
                    indices[p] = UInt32(row)
                    p += 1
                }
            }
        }
        rows = k
        columns = n
        columnStart = start
        self.values = values
        rowIndex = k <= 65536 ? .narrow(indices.map { UInt16(truncatingIfNeeded: $0) }) : .wide(indices)
    }
}

/// Fraction (0...1) of the `count` floats at `x` that are exactly zero; 0 when count is 0.
public func zeroFraction(_ x: UnsafePointer<Float>, count: Int) -> Double {
    guard count > 0 else { return 0 }
    var zeros = 0
    for i in 0..<count where x[i] == 0 { zeros += 1 }
    return Double(zeros) / Double(count)
}

/// C[M,N] = alpha * A[M,K] * B[K,N] + beta * C, with B sparse. A is row-major with row stride
/// `lda` (>= K), C row-major with row stride `ldc` (>= N). When beta == 0, C is not read.
/// Work is split over output columns on up to `threads` threads. The result matches
/// `sparseGemmReference` to float rounding (the sums run in a different order).
public func sparseGemm(m: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, b: SparseMatrix,
                       beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = 1) {
    if m == 0 || b.columns == 0 { return }
    if b.nonzeroCount == 0 {  // empty arrays have no base address; the product is zero
        for i in 0..<m {
            for n in 0..<b.columns { c[i * ldc + n] = beta == 0 ? 0 : beta * c[i * ldc + n] }
        }
        return
    }
    switch b.rowIndex {
    case .narrow(let indices):
        indices.withUnsafeBufferPointer { index in
            sparseGemm(m: m, alpha: alpha, a: a, lda: lda, b: b, rowIndex: index.baseAddress!, beta: beta, c: c, ldc: ldc, threads: threads)
        }
    case .wide(let indices):
        indices.withUnsafeBufferPointer { index in
            sparseGemm(m: m, alpha: alpha, a: a, lda: lda, b: b, rowIndex: index.baseAddress!, beta: beta, c: c, ldc: ldc, threads: threads)
        }
    }
}

/// The readable definition of `sparseGemm` (same contract), one output at a time.
public func sparseGemmReference(m: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, b: SparseMatrix,
                                beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    let rows: [Int]
    switch b.rowIndex {
    case .narrow(let x): rows = x.map(Int.init)
    case .wide(let x): rows = x.map(Int.init)
    }
    for i in 0..<m {
        for n in 0..<b.columns {
            var sum: Float = 0
            for p in b.columnStart[n]..<b.columnStart[n + 1] { sum += a[i * lda + rows[p]] * b.values[p] }
            let out = c + i * ldc + n
            out.pointee = alpha * sum + (beta == 0 ? 0 : beta * out.pointee)
        }
    }
}

// MARK: - Fast paths

/// Rows of A handled together: the block is transposed so that one nonzero of B multiplies a
/// whole SIMD vector of rows.
private let rowBlock = 16

/// `sparseGemm` with B's row indices as a typed pointer; B has at least one nonzero, M and N
/// are positive. One row of A goes through the gathering kernel; more rows go through blocks
/// of up to 16 rows of Aᵀ.
private func sparseGemm<Index: FixedWidthInteger>(
    m: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int, b: SparseMatrix, rowIndex: UnsafePointer<Index>,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int
) {
    let k = b.rows, n = b.columns
    // Columns are split into up to 64 contiguous chunks of at least 16 that idle threads take
    // in turn; every chunk is non-empty.
    let workers = max(1, min(threads, n / 16))
    let chunkSize = workers == 1 ? n : max(16, (n + 63) / 64)
    let chunks = (n + chunkSize - 1) / chunkSize
    b.values.withUnsafeBufferPointer { vb in
        b.columnStart.withUnsafeBufferPointer { sb in
            let values = vb.baseAddress!, start = sb.baseAddress!
            if m == 1 {
                parallelForDynamic(chunks, threads: workers) { chunk in
                    let range = chunk * chunkSize..<min(n, (chunk + 1) * chunkSize)
                    sparseRowTimesColumns(a, values: values, rowIndex: rowIndex, start: start, columns: range,
                                          alpha: alpha, beta: beta, c: c)
                }
                return
            }
            // Aᵀ for one block of rows: [K, width], padded with zero rows up to the SIMD width.
            let transposed = UnsafeMutablePointer<Float>.allocate(capacity: max(1, k * rowBlock))
            defer { transposed.deallocate() }
            var r0 = 0
            while r0 < m {
                let rowsHere = min(rowBlock, m - r0)
                let width = rowsHere <= 8 ? 8 : 16
                for p in 0..<k {
                    let row = transposed + p * width
                    for i in 0..<rowsHere { row[i] = a[(r0 + i) * lda + p] }
                    for i in rowsHere..<width { row[i] = 0 }
                }
                let at = UnsafePointer(transposed), cBlock = c + r0 * ldc
                parallelForDynamic(chunks, threads: workers) { chunk in
                    let range = chunk * chunkSize..<min(n, (chunk + 1) * chunkSize)
                    if width == 8 {
                        sparseBlockTimesColumns(at, SIMD8<Float>.self, rows: rowsHere, values: values, rowIndex: rowIndex,
                                                start: start, columns: range, alpha: alpha, beta: beta, c: cBlock, ldc: ldc)
                    } else {
                        sparseBlockTimesColumns(at, SIMD16<Float>.self, rows: rowsHere, values: values, rowIndex: rowIndex,
                                                start: start, columns: range, alpha: alpha, beta: beta, c: cBlock, ldc: ldc)
                    }
                }
                r0 += rowsHere
            }
        }
    }
}

/// c[n] = alpha * Σ a[row] * value + beta * c[n] for the columns in `columns`, one row of A.
/// Sixteen nonzeros per step: values load as vectors, the A entries are gathered.
@inline(__always)
private func sparseRowTimesColumns<Index: FixedWidthInteger>(
    _ a: UnsafePointer<Float>, values: UnsafePointer<Float>, rowIndex: UnsafePointer<Index>, start: UnsafePointer<Int>,
    columns: Range<Int>, alpha: Float, beta: Float, c: UnsafeMutablePointer<Float>
) {
    @inline(__always) func gather(_ p: Int) -> SIMD8<Float> {
        let x = rowIndex + p
        return SIMD8(a[Int(x[0])], a[Int(x[1])], a[Int(x[2])], a[Int(x[3])],
                     a[Int(x[4])], a[Int(x[5])], a[Int(x[6])], a[Int(x[7])])
    }
    let raw = UnsafeRawPointer(values)
    for column in columns {
        var p = start[column]
        let end = start[column + 1]
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        while p + 16 <= end {
            acc0.addProduct(raw.loadUnaligned(fromByteOffset: p * 4, as: SIMD8<Float>.self), gather(p))
            acc1.addProduct(raw.loadUnaligned(fromByteOffset: (p + 8) * 4, as: SIMD8<Float>.self), gather(p + 8))
            p += 16
        }
        var sum = (acc0 + acc1).sum()
        while p < end {
            sum += values[p] * a[Int(rowIndex[p])]
            p += 1
        }
        c[column] = alpha * sum + (beta == 0 ? 0 : beta * c[column])
    }
}

/// C[i, n] = alpha * Σ Aᵀ[row, i] * value + beta * C[i, n] for i < `rows` and n in `columns`.
/// `at` is Aᵀ of the block, [K, V.scalarCount] (padded rows are zero). Two accumulators hide
/// the FMA latency.
@inline(__always)
private func sparseBlockTimesColumns<Index: FixedWidthInteger, V: SIMD>(
    _ at: UnsafePointer<Float>, _: V.Type, rows: Int, values: UnsafePointer<Float>, rowIndex: UnsafePointer<Index>,
    start: UnsafePointer<Int>, columns: Range<Int>, alpha: Float, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) where V.Scalar == Float {
    let raw = UnsafeRawPointer(at), rowBytes = V.scalarCount * 4
    @inline(__always) func row(_ p: Int) -> V { raw.loadUnaligned(fromByteOffset: Int(rowIndex[p]) * rowBytes, as: V.self) }
    for column in columns {
        var p = start[column]
        let end = start[column + 1]
        var acc0 = V(), acc1 = V()
        while p + 2 <= end {
            acc0.addProduct(V(repeating: values[p]), row(p))
            acc1.addProduct(V(repeating: values[p + 1]), row(p + 1))
            p += 2
        }
        if p < end { acc0.addProduct(V(repeating: values[p]), row(p)) }
        let sum = acc0 + acc1
        for i in 0..<rows {
            let out = c + i * ldc + column
            out.pointee = alpha * sum[i] + (beta == 0 ? 0 : beta * out.pointee)
        }
    }
}

extension SIMD where Scalar == Float {
    @inline(__always)
    fileprivate mutating func addProduct(_ x: Self, _ y: Self) { self = self.addingProduct(x, y) }
}
