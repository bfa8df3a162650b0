import KerfCore
import KerfKernels

// MatMulInteger and QLinearMatMul: numpy.matmul broadcasting over uint8 / int8 operands,
// products through `int8Gemm` (constant B packed once per session).

enum IntegerMatMulOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["MatMulInteger"] = { c in
            let cache = IntegerWeightCache(c.constant(1), zeroPoint: c.constant(3), threads: c.options.resolvedThreads)
            return ClosureOperator { inputs in
                let a = try inputs.required(0, "A"), b = try inputs.required(1, "B")
                return [try integerMatMul(a, b, aZeroPoint: inputs.optional(2) ?? nil, bZeroPoint: inputs.optional(3) ?? nil, cache: cache)]
            }
        }
        r["QLinearMatMul"] = { c in
            let cache = IntegerWeightCache(c.constant(3), zeroPoint: c.constant(5), threads: c.options.resolvedThreads)
            return ClosureOperator { inputs in
                let a = try inputs.required(0, "a"), b = try inputs.required(3, "b")
                let yZero = try inputs.required(7, "y_zero_point")
                let acc = try integerMatMul(a, b, aZeroPoint: try inputs.required(2, "a_zero_point"),
                                            bZeroPoint: try inputs.required(5, "b_zero_point"), cache: cache)
                let aScale = try floatScalars(try inputs.required(1, "a_scale")), bScale = try floatScalars(try inputs.required(4, "b_scale"))
                let yScale = try floatScalars(try inputs.required(6, "y_scale"))
                guard aScale.count == 1, yScale.count == 1, bScale.count == 1 || bScale.count == acc.shape.last else {
                    throw KerfError.unsupported("QLinearMatMul supports per-tensor a and y, per-tensor or per-column b")
                }
                let multipliers = bScale.map { aScale[0] * $0 / yScale[0] }
                return [try requantized(acc, multipliers: multipliers, bias: nil, zeroPoint: yZero)]
            }
        }
    }
}

/// A scale tensor's values as float32 (float16 / bfloat16 converted).
func floatScalars(_ t: Tensor) throws -> [Float] {
    guard t.dtype.isFloatingPoint else { throw KerfError.shapeMismatch("a scale must be a float tensor, got \(t.dtype)") }
    return try t.convertedToFloat32().array(of: Float.self)
}

/// Integer zero points (any 8-bit or 32-bit integer dtype) as Int32.
func integerValues(_ t: Tensor) throws -> [Int32] { try cast(t, to: .int32).array(of: Int32.self) }

/// The GEMM layout integer products (MatMulInteger, QLinearMatMul, dynamic and QDQ products)
/// use for int8 or uint8 `a` times `b`: the u8s8 kernel where it is exact (VNNI), the exact wide
/// kernel otherwise. Products are exact on every CPU, as ONNX defines them. (ONNX Runtime's
/// MLAS U8S8 kernels saturate k-pair sums in int16 on CPUs without VNNI.)
func int8Layout(activation a: DType, weight b: DType) -> Int8GemmLayout {
    b == .int8 && !int8GemmSaturatesPairs ? .u8s8 : .wide
}

/// A constant 2-D weight of MatMulInteger / QLinearMatMul with a constant zero point, packed
/// the first time each layout is needed. One run at a time uses it (its plan step's lock).
final class IntegerWeightCache {
    private let weight: Tensor?
    private let zeroPoints: [Int32]
    let threads: Int
    private var packed: [Int8GemmLayout: PackedInt8Weights] = [:]

    init(_ weight: Tensor?, zeroPoint: Tensor?, threads: Int) {
        self.threads = threads
        guard let weight, weight.rank == 2, weight.dtype == .int8 || weight.dtype == .uint8,
              let zeros = (zeroPoint.map { try? integerValues($0) } ?? [0]), zeros.count == 1 || zeros.count == weight.shape[1] else {
            self.weight = nil
            zeroPoints = []
            return
        }
        self.weight = weight
        zeroPoints = zeros
    }

    /// True when `b` is the cached weight.
    func holds(_ b: Tensor) -> Bool { weight.map { b.storage === $0.storage && b.shape == $0.shape } ?? false }

    /// The packed form of `b` when it is the cached weight with these zero points.
    func packed(_ b: Tensor, zeroPoints zeros: [Int32], layout: Int8GemmLayout) -> PackedInt8Weights? {
        guard let weight, b.storage === weight.storage, b.shape == weight.shape, zeros == zeroPoints else { return nil }
        if let p = packed[layout] { return p }
        let p = packWeights(weight, offset: 0, k: weight.shape[0], n: weight.shape[1], zeroPoints: zeros, layout: layout)
        packed[layout] = p
        return p
    }
}

/// Packs the [k, n] row-major matrix of `b` starting at element `offset`.
func packWeights(_ b: Tensor, offset: Int, k: Int, n: Int, zeroPoints: [Int32], layout: Int8GemmLayout,
                 transposed: Bool = false) -> PackedInt8Weights {
    let (rowStride, columnStride) = transposed ? (1, k) : (n, 1)
    if b.dtype == .int8 {
        return b.withElements(as: Int8.self) {
            PackedInt8Weights($0.baseAddress! + offset, k: k, n: n, rowStride: rowStride, columnStride: columnStride,
                              zeroPoints: zeroPoints, layout: layout)
        }
    }
    return b.withElements(as: UInt8.self) {
        PackedInt8Weights($0.baseAddress! + offset, k: k, n: n, rowStride: rowStride, columnStride: columnStride,
                          zeroPoints: zeroPoints, layout: .wide)
    }
}

/// MatMulInteger: int32 Σ_k (A - aZero)(B - bZero) with numpy.matmul broadcasting. aZero is a
/// scalar or one per row of A; bZero a scalar or one per column of B.
func integerMatMul(_ a: Tensor, _ b: Tensor, aZeroPoint: Tensor?, bZeroPoint: Tensor?, cache: IntegerWeightCache?) throws -> Tensor {
    for t in [a, b] where t.dtype != .uint8 && t.dtype != .int8 {
        throw KerfError.unsupported("integer MatMul takes uint8 or int8 operands, got \(t.dtype)")
    }
    if let z = aZeroPoint, z.dtype != a.dtype { throw KerfError.shapeMismatch("A's zero point is \(z.dtype), A is \(a.dtype)") }
    if let z = bZeroPoint, z.dtype != b.dtype { throw KerfError.shapeMismatch("B's zero point is \(z.dtype), B is \(b.dtype)") }
    let g = try MatMulGeometry(a.shape, b.shape, op: "MatMulInteger")
    let aZeros = try aZeroPoint.map(integerValues) ?? [0]
    var bZeros = try bZeroPoint.map(integerValues) ?? [0]
    guard aZeros.count == 1 || aZeros.count == g.m else { throw KerfError.shapeMismatch("A's zero point has \(aZeros.count) values for \(g.m) rows") }
    guard bZeros.count == 1 || bZeros.count == g.n else { throw KerfError.shapeMismatch("B's zero point has \(bZeros.count) values for \(g.n) columns") }
    let out = try Tensor(uninitialized: .int32, shape: g.outShape)
    if out.count == 0 { return out }
    if g.k == 0 {
        out.storage.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: out.byteCount)
        return out
    }
    var b = b
    if b.dtype == .uint8 && a.dtype == .uint8 && int8GemmHasVNNI && cache?.holds(b) != true {
        // A run-time uint8 B as int8 B - 128 with zero points zb - 128 (the same differences):
        // the exact VNNI u8s8 kernel instead of the wide one.
        b = try shiftedToInt8(b)
        bZeros = bZeros.map { $0 - 128 }
    }
    let layout = int8Layout(activation: a.dtype, weight: b.dtype)
    let c = out.storage.pointer.assumingMemoryBound(to: Int32.self)
    for bi in 0..<g.batchCount {
        let (oa, ob) = g.offsets(bi)
        let weights = (b.rank == 2 ? cache?.packed(b, zeroPoints: bZeros, layout: layout) : nil)
            ?? packWeights(b, offset: ob, k: g.k, n: g.n, zeroPoints: bZeros, layout: layout)
        let rows = a.storage.pointer + oa, cb = c + bi * g.m * g.n
        let threads = cache?.threads ?? 1
        if aZeros.count == 1 {
            int8Gemm(m: g.m, a: rows, aSigned: a.dtype == .int8, lda: g.k, aZeroPoint: aZeros[0], b: weights, c: cb, ldc: g.n, threads: threads)
        } else {
            for i in 0..<g.m {
                int8Gemm(m: 1, a: rows + i * g.k, aSigned: a.dtype == .int8, lda: g.k, aZeroPoint: aZeros[i], b: weights,
                         c: cb + i * g.n, ldc: g.n, threads: threads)
            }
        }
    }
    return out
}

/// uint8 values as int8 values 128 lower (the top bit flipped).
private func shiftedToInt8(_ b: Tensor) throws -> Tensor {
    let out = try Tensor(uninitialized: .int8, shape: b.shape)
    let src = b.storage.pointer.assumingMemoryBound(to: UInt8.self), dst = out.storage.pointer.assumingMemoryBound(to: UInt8.self)
    for i in 0..<b.count { dst[i] = src[i] ^ 0x80 }
    return out
}

/// int32 sums [..., n] requantized to the dtype of `zeroPoint` (uint8 or int8, per tensor).
func requantized(_ acc: Tensor, multipliers: [Float], bias: [Int32]?, zeroPoint: Tensor) throws -> Tensor {
    guard let range = quantizedRange(zeroPoint.dtype), zeroPoint.dtype == .uint8 || zeroPoint.dtype == .int8 else {
        throw KerfError.unsupported("requantization to \(zeroPoint.dtype) is not supported")
    }
    let zero = try integerValues(zeroPoint)
    guard zero.count == 1 else { throw KerfError.unsupported("the output zero point must be a scalar") }
    let n = acc.shape.last ?? 1, m = acc.count / max(n, 1)
    let y = try Tensor(uninitialized: zeroPoint.dtype, shape: acc.shape)
    let src = acc.storage.pointer.assumingMemoryBound(to: Int32.self)
    multipliers.withUnsafeBufferPointer { mult in
        func write<T: FixedWidthInteger>(_: T.Type) {
            let dst = y.storage.pointer.assumingMemoryBound(to: T.self)
            if let bias {
                bias.withUnsafeBufferPointer {
                    requantizeProduct(src, m: m, n: n, ldAcc: n, bias: $0, multipliers: mult, zeroPoint: zero[0], lo: range.lo, hi: range.hi,
                                      into: dst, rowStride: n, columnStride: 1)
                }
            } else {
                requantizeProduct(src, m: m, n: n, ldAcc: n, bias: nil, multipliers: mult, zeroPoint: zero[0], lo: range.lo, hi: range.hi,
                                  into: dst, rowStride: n, columnStride: 1)
            }
        }
        if zeroPoint.dtype == .uint8 { write(UInt8.self) } else { write(Int8.self) }
    }
    return y
}
