import KerfCore
import KerfKernels

// Gemm and MatMul.

/// Generic (non-float32) matrix product C[M,N] = A[M,K] * B[K,N], accumulating in T.
func matmulGeneric<T: NumericElement>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ c: UnsafeMutablePointer<T>, m: Int, n: Int, k: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var s = T.zero
            for p in 0..<k { s = T.add(s, T.mul(a[i * k + p], b[p * n + j])) }
            c[i * n + j] = s
        }
    }
}

/// The shapes of a numpy.matmul product: 1-D operands promoted (the added dim removed from
/// `outShape`), batch dims broadcast. Batch `index` multiplies the [m, k] matrix of A at element
/// offset `offsets(index).a` by the [k, n] matrix of B at `offsets(index).b`.
struct MatMulGeometry {
    let m: Int, n: Int, k: Int
    let batchCount: Int
    /// The product's shape.
    let outShape: [Int]
    private let batch: [Int], sa: [Int], sb: [Int]
    /// True when every batch multiplies the same B and A's batches are dense: the product is
    /// then one [batchCount * m, k] x [k, n] GEMM.
    let rowsFold: Bool

    init(_ a: [Int], _ b: [Int], op: String = "MatMul") throws {
        guard a.count >= 1, b.count >= 1 else { throw KerfError.shapeMismatch("\(op) operands must have rank >= 1") }
        let aShape = a.count == 1 ? [1, a[0]] : a
        let bShape = b.count == 1 ? [b[0], 1] : b
        m = aShape[aShape.count - 2]
        k = aShape[aShape.count - 1]
        let k2 = bShape[bShape.count - 2]
        n = bShape[bShape.count - 1]
        guard k == k2 else { throw KerfError.shapeMismatch("\(op) shapes \(a) and \(b) do not match (K \(k) vs \(k2))") }
        let aBatch = Array(aShape.dropLast(2)), bBatch = Array(bShape.dropLast(2))
        guard let batch = broadcastShape(aBatch, bBatch) else {
            throw KerfError.shapeMismatch("\(op) batch dims of \(a) and \(b) do not broadcast")
        }
        self.batch = batch
        batchCount = batch.reduce(1, *)
        sa = broadcastStrides(aBatch, to: batch)
        sb = broadcastStrides(bBatch, to: batch)
        rowsFold = bBatch.allSatisfy { $0 == 1 } && aBatch == batch
        var shape = batch + [m, n]
        if a.count == 1 { shape.remove(at: shape.count - 2) }
        if b.count == 1 { shape.removeLast() }
        outShape = shape
    }

    func offsets(_ index: Int) -> (a: Int, b: Int) {
        var rem = index, oa = 0, ob = 0
        for d in stride(from: batch.count - 1, through: 0, by: -1) {
            let i = rem % batch[d]
            rem /= batch[d]
            oa += i * sa[d]
            ob += i * sb[d]
        }
        return (oa * m * k, ob * k * n)
    }
}

/// numpy.matmul semantics: 1-D operands are promoted (and the added dim removed after),
/// batch dims broadcast.
/// Batches run on up to `threads` threads (one single-threaded GEMM each) unless they fold
/// into one GEMM, which threads itself.
func matmul(_ a: Tensor, _ b: Tensor, threads: Int = 1) throws -> Tensor {
    guard a.dtype == b.dtype else { throw KerfError.shapeMismatch("MatMul operands have dtypes \(a.dtype) and \(b.dtype)") }
    if a.dtype == .float16 || a.dtype == .bfloat16 {
        return try matmul(a.convertedToFloat32(), b.convertedToFloat32()).convertedFromFloat32(to: a.dtype)
    }
    let g = try MatMulGeometry(a.shape, b.shape)
    // Folded batches are one GEMM of batchCount * m rows.
    let (m, batchCount) = g.rowsFold ? (g.m * g.batchCount, 1) : (g.m, g.batchCount)
    let (n, k, outShape) = (g.n, g.k, g.outShape)
    let offsets = g.offsets
    struct Body: NumericBody {
        let a: Tensor, b: Tensor, outShape: [Int], m: Int, n: Int, k: Int, batchCount: Int, threads: Int
        let offsets: (Int) -> (a: Int, b: Int)
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            var out = try Tensor(uninitialized: a.dtype, shape: outShape)
            a.withElements(as: T.self) { x in
                b.withElements(as: T.self) { y in
                    out.withMutableElements(as: T.self) { z in
                        let (px, py, pz) = (x.baseAddress!, y.baseAddress!, z.baseAddress!)
                        let one = { (bi: Int) in
                            let (oa, ob) = batchCount == 1 ? (0, 0) : offsets(bi)
                            let pc = pz + bi * m * n
                            if T.self == Float.self {
                                sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1,
                                      a: UnsafeRawPointer(px + oa).assumingMemoryBound(to: Float.self), lda: k,
                                      b: UnsafeRawPointer(py + ob).assumingMemoryBound(to: Float.self), ldb: n, beta: 0,
                                      c: UnsafeMutableRawPointer(pc).assumingMemoryBound(to: Float.self), ldc: n)
                            } else {
                                matmulGeneric(px + oa, py + ob, pc, m: m, n: n, k: k)
                            }
                        }
                        if batchCount > 1 && threads > 1 {
                            parallelForDynamic(batchCount, threads: threads) { one($0) }
                        } else {
                            for bi in 0..<batchCount { one(bi) }
                        }
                    }
                }
            }
            return out
        }
    }
    return try dispatchNumeric(a.dtype, Body(a: a, b: b, outShape: outShape, m: m, n: n, k: k, batchCount: batchCount,
                                             threads: threads, offsets: offsets))
}

enum MatMulOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["MatMul"] = { c in
            // The optimizer may fuse a bias (input 2, broadcast over rows) and an activation.
            let fusedBias = try c.int(FusedAttributes.bias, default: 0) != 0
            let activation = try c.fusedActivation()
            let threads = c.options.resolvedThreads
            let sparse = c.options.sparseKernels
                ? c.constant(1).flatMap { SparseWeights($0, transposed: false, threads: threads, probe: c.options.probe) } : nil
            // Dense constant weights are packed once (with the fused bias, when constant).
            let packed = sparse == nil
                ? PackedWeights(c, input: 1, transposed: false, bias: fusedBias ? c.constant(2) : nil, threads: threads) : nil
            return ClosureOperator { inputs in
                let a = try inputs.required(0)
                let bias = fusedBias ? try inputs.required(2, "fused bias") : nil
                if let packed, let y = try packed.product(a, inputs.optional(1) ?? nil, bias: bias) { return [try applying(activation, to: y)] }
                // B is nil here when the packed weights own it.
                guard let b = try (inputs.optional(1) ?? nil) ?? packed?.weights() else { throw KerfError.invalidArgument("missing required input 1") }
                var y = try sparse?.matmul(a, b) ?? matmul(a, b, threads: threads)
                if let bias { y = try addingRowBias(y, bias) }
                return [try applying(activation, to: y)]
            }
        }
        r["Gemm"] = { c in
            let alpha = try c.float("alpha", default: 1), beta = try c.float("beta", default: 1)
            let transA = try c.int("transA", default: 0) != 0, transB = try c.int("transB", default: 0) != 0
            let activation = try c.fusedActivation()
            let sparse = c.options.sparseKernels
                ? c.constant(1).flatMap { SparseWeights($0, transposed: transB, threads: c.options.resolvedThreads, probe: c.options.probe) } : nil
            // Y = A · B + beta * C with constant B and C a row (or absent): B packed once, with C as its bias.
            let bias = c.constant(2).flatMap { $0.count > 0 && beta != 0 ? $0 : nil }
            let packs = sparse == nil && !transA && alpha == 1 && (c.node.inputs.count < 3 || c.node.inputs[2].isEmpty || bias != nil)
            let packed = packs ? PackedWeights(c, input: 1, transposed: transB, bias: bias, biasScale: beta, threads: c.options.resolvedThreads) : nil
            return ClosureOperator { inputs in
                if let packed, let a = inputs.optional(0) ?? nil, a.rank == 2,
                   let y = try packed.product(a, inputs.optional(1) ?? nil, bias: bias == nil ? nil : inputs.optional(2) ?? nil) {
                    return [try applying(activation, to: y)]
                }
                var inputs = inputs
                if inputs.count > 1, inputs[1] == nil, let b = try packed?.weights() { inputs[1] = b }  // B owned by the packed weights
                return try withFloat32(inputs) { ins in
                    [try applying(activation, to: try gemm(try ins.required(0), try ins.required(1), ins.optional(2) ?? nil,
                                                            transA: transA, transB: transB, alpha: alpha, beta: beta, sparse: sparse))]
                }
            }
        }
    }
}

/// Y = alpha * op(A) * op(B) + beta * C, with C broadcast to [M, N]. When `sparse` holds B (the
/// same storage, built with `transB`), the product goes through it.
func gemm(_ a: Tensor, _ b: Tensor, _ c: Tensor?, transA: Bool, transB: Bool, alpha: Float, beta: Float,
          sparse: SparseWeights? = nil) throws -> Tensor {
    guard a.rank == 2, b.rank == 2 else { throw KerfError.shapeMismatch("Gemm needs 2-D A and B, got \(a.shape) and \(b.shape)") }
    let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
    let kb = transB ? b.shape[1] : b.shape[0], n = transB ? b.shape[0] : b.shape[1]
    guard k == kb else { throw KerfError.shapeMismatch("Gemm shapes \(a.shape) and \(b.shape) do not match (transA \(transA), transB \(transB))") }
    if let c, broadcastShape(c.shape, [m, n]) != [m, n] {
        throw KerfError.shapeMismatch("Gemm C of shape \(c.shape) does not broadcast to [\(m), \(n)]")
    }
    switch a.dtype {
    case .float:
        guard b.dtype == .float, c == nil || c!.dtype == .float else { throw KerfError.shapeMismatch("Gemm operands must share a dtype") }
        var out = try Tensor(uninitialized: .float, shape: [m, n])
        try out.withMutableElements(as: Float.self) { y in
            var betaUsed: Float = 0
            if let c, beta != 0 {
                c.withElements(as: Float.self) { cv in
                    if c.count == n && c.shape.last == n {  // a bias row: copied into each row
                        for row in 0..<m { (y.baseAddress! + row * n).update(from: cv.baseAddress!, count: n) }
                    } else {
                        broadcastCopy(UnsafeRawPointer(cv.baseAddress!), c.shape, elementSize: 4, UnsafeMutableRawPointer(y.baseAddress!), [m, n])
                    }
                }
                betaUsed = beta
            }
            if let sparse, sparse.matches(b), m > 0 {
                // The sparse kernel reads A as rows: a transposed A is materialized first.
                let rows = transA ? try transpose(a, perm: [1, 0]) : a
                rows.withElements(as: Float.self) { av in
                    b.withElements(as: Float.self) { bv in
                        sparse.multiply(m: m, alpha: alpha, a: av.baseAddress!, lda: k, dense: bv.baseAddress!,
                                        beta: betaUsed, c: y.baseAddress!, ldc: n)
                    }
                }
                return
            }
            a.withElements(as: Float.self) { av in
                b.withElements(as: Float.self) { bv in
                    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: av.baseAddress!, lda: a.shape[1],
                          b: bv.baseAddress!, ldb: b.shape[1], beta: betaUsed, c: y.baseAddress!, ldc: n)
                }
            }
        }
        return out
    default:
        // Other numeric types: transpose as needed, multiply, then scale and add C.
        let a2 = transA ? try transpose(a, perm: [1, 0]) : a
        let b2 = transB ? try transpose(b, perm: [1, 0]) : b
        var y = try matmul(a2, b2)
        if alpha != 1 { y = try arithmetic(.mul, y, try castScalar(Tensor(scalar: alpha), to: y.dtype)) }
        if let c, beta != 0 {
            let scaled = beta == 1 ? c : try arithmetic(.mul, c, try castScalar(Tensor(scalar: beta), to: c.dtype))
            y = try arithmetic(.add, y, scaled)
        }
        return y
    }
}

/// y + bias for a fresh float32 product y [..., n] and a bias of n elements (what the optimizer
/// fuses into MatMul), added in place row by row; other shapes and dtypes broadcast as Add does.
func addingRowBias(_ y: Tensor, _ bias: Tensor) throws -> Tensor {
    let n = y.shape.last ?? 1
    guard y.dtype == .float, bias.dtype == .float, bias.count == n, bias.shape.last == n, y.rank >= 1, bias.rank <= y.rank else {
        return try arithmetic(.add, y, bias)
    }
    let out = y.storage.pointer.assumingMemoryBound(to: Float.self)
    let b = bias.storage.pointer.assumingMemoryBound(to: Float.self)
    for row in 0..<(y.count / max(n, 1)) {
        let r = out + row * n
        for j in 0..<n { r[j] += b[j] }
    }
    return y
}

/// Applies a fused activation in place to a float32 result (the optimizer fuses only float32
/// products; any other dtype here is a bug in a hand-made graph and is reported).
func applying(_ activation: Activation, to y: Tensor) throws -> Tensor {
    if activation == .none { return y }
    guard y.dtype == .float else { throw KerfError.unsupported("fused activation on a \(y.dtype) result") }
    // y is a fresh result of this node, so it is updated in place.
    activation.apply(y.storage.pointer.assumingMemoryBound(to: Float.self), count: y.count)
    return y
}
