import KerfCore

// Cast between numeric, bool and half-precision dtypes; ArgMax/ArgMin.

/// Converts `x` to `target`. Integer <-> integer (and bool) conversions wrap like C casts;
/// anything involving a float goes through Double: float -> int truncates toward zero and
/// saturates, NaN -> 0; x -> bool is x != 0.
/// `saturate` and `roundMode` only matter for float8 targets (see CastFormats.swift).
func cast(_ x: Tensor, to target: DType, saturate: Bool = true, roundMode: String = "up") throws -> Tensor {
    if x.dtype == target { return x }
    if isStorageOnlyType(x.dtype) || isStorageOnlyType(target) {
        return try castStorageOnly(x, to: target, saturate: saturate, roundMode: roundMode)
    }
    let source = try x.dtype == .float16 || x.dtype == .bfloat16 ? x.convertedToFloat32() : x
    let via = target == .float16 || target == .bfloat16 ? DType.float : target
    let out = try Tensor(uninitialized: via, shape: x.shape)  // new storage: written in place
    try dispatchElements(source.dtype, ConvertFrom(source: source, destination: out.storage.pointer, count: out.count, target: via))
    return try via == target ? out : out.convertedFromFloat32(to: target)
}

/// Runs `body` with the Swift type of a numeric dtype, bool as its 0/1 bytes (UInt8).
private func dispatchElements<B: NumericBody>(_ dtype: DType, _ body: B) throws -> B.Result {
    try dispatchNumeric(dtype == .bool ? .uint8 : dtype, body)
}

/// The first half of a cast: the source's element type is known, the target's is dispatched.
private struct ConvertFrom: NumericBody {
    let source: Tensor
    let destination: UnsafeMutableRawPointer?
    let count: Int
    let target: DType
    func run<S: NumericElement>(_: S.Type) throws {
        guard let destination, count > 0 else { return }
        try source.withElements(as: S.self) { src in
            if target == .bool {
                let dst = destination.assumingMemoryBound(to: UInt8.self)
                for i in 0..<count { dst[i] = src[i] != .zero ? 1 : 0 }
            } else {
                try dispatchNumeric(target, Convert(source: src, boolean: source.dtype == .bool, destination: destination, count: count))
            }
        }
    }
}

/// One element loop per (source, target) pair: through Double when either side is floating
/// point (float -> int truncates toward zero and saturates, NaN -> 0), else two's complement
/// truncation through 64 bits, like C. A `boolean` source's bytes are 0 or 1 (any other byte, from
/// a caller's view, reads as 1).
private struct Convert<S: NumericElement>: NumericBody {
    let source: UnsafeBufferPointer<S>
    let boolean: Bool
    let destination: UnsafeMutableRawPointer
    let count: Int
    func run<D: NumericElement>(_: D.Type) {
        let dst = destination.assumingMemoryBound(to: D.self)
        if boolean {
            for i in 0..<count { dst[i] = D(truncatingBits: source[i] != .zero ? 1 : 0) }
        } else if S.isFloatingPoint || D.isFloatingPoint {
            for i in 0..<count { dst[i] = D(fromDouble: source[i].doubleValue) }
        } else {
            for i in 0..<count { dst[i] = D(truncatingBits: source[i].int64Bits) }
        }
    }
}

/// BitCast (opset 26): x's bytes read as `target`, which must have x's element size (sharing
/// x's storage). Strings and sub-byte types are refused.
func bitCast(_ x: Tensor, to target: DType) throws -> Tensor {
    guard x.dtype != .string, target != .string, !x.dtype.isSubByte, !target.isSubByte, x.dtype.byteSize == target.byteSize else {
        throw KerfError.invalidArgument("BitCast from \(x.dtype) to \(target) needs types of one element size (strings and sub-byte types excluded)")
    }
    return Tensor(dtype: target, shape: x.shape, storage: x.storage)
}

enum CastOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Cast"] = { c in
            guard let code = try c.int("to"), let target = DType(rawValue: Int32(code)),
                  target.isComputable || isStorageOnlyType(target) else {
                throw KerfError.unsupported("Cast to dtype \((try? c.int("to")) ?? nil ?? 0) is not supported")
            }
            let saturate = try c.int("saturate", default: 1) != 0
            let roundMode = try c.string("round_mode", default: "up")
            return ClosureOperator { [try cast(try $0.required(0), to: target, saturate: saturate, roundMode: roundMode)] }
        }
        r["BitCast"] = { c in
            guard let code = try c.int("to"), let target = DType(rawValue: Int32(code)) else {
                throw KerfError.invalidModel("BitCast needs a known dtype in 'to'")
            }
            return ClosureOperator { [try bitCast(try $0.required(0), to: target)] }
        }
        r["CastLike"] = { c in
            let saturate = try c.int("saturate", default: 1) != 0
            let roundMode = try c.string("round_mode", default: "up")
            return ClosureOperator { inputs in
                let target = try inputs.required(1, "target_type").dtype
                return [try cast(try inputs.required(0), to: target, saturate: saturate, roundMode: roundMode)]
            }
        }
        for (name, isMax) in [("ArgMax", true), ("ArgMin", false)] {
            r[name] = { c in
                let axis = try c.int("axis", default: 0), keepDims = try c.int("keepdims", default: 1) != 0
                let selectLast = try c.int("select_last_index", default: 0) != 0
                return ClosureOperator { inputs in
                    let x = try inputs.required(0)
                    let source = try x.dtype == .float16 || x.dtype == .bfloat16 ? x.convertedToFloat32() : x
                    let a = try normalizeAxis(axis, rank: x.rank)
                    guard x.shape[a] > 0 else { throw KerfError.shapeMismatch("\(name) over an empty axis") }
                    var shape = x.shape
                    if keepDims { shape[a] = 1 } else { shape.remove(at: a) }
                    var out = try Tensor(uninitialized: .int64, shape: shape)
                    try out.withMutableElements(as: Int64.self) { result in
                        try dispatchElements(source.dtype, ExtremeIndex(x: source, axis: a, isMax: isMax, selectLast: selectLast, result: result))
                    }
                    return [out]
                }
            }
        }
        // ai.onnx.ml: gathers along the last axis of X.
        r["ai.onnx.ml:ArrayFeatureExtractor"] = { _ in
            ClosureOperator { inputs in
                let x = try inputs.required(0), indices = try inputs.required(1)
                guard x.rank >= 1 else { throw KerfError.shapeMismatch("ArrayFeatureExtractor needs rank >= 1") }
                if x.rank == 1, let picked = try pickedFromVector(x, indices) { return [picked] }
                let picked = try gather(x, indices.reshaped([indices.count]), axis: x.rank - 1)
                return [x.rank == 1 ? picked.reshaped([1, indices.count]) : picked]
            }
        }
    }
}

/// ArgMax / ArgMin of `x` along `axis` into `result` (x's shape without that axis): the index
/// of the first (or, with selectLast, last) extreme value. NaN never wins a comparison.
private struct ExtremeIndex: NumericBody {
    let x: Tensor
    let axis: Int
    let isMax: Bool
    let selectLast: Bool
    let result: UnsafeMutableBufferPointer<Int64>
    func run<T: NumericElement>(_: T.Type) {
        let n = x.shape[axis], inner = x.shape[(axis + 1)...].reduce(1, *), outer = x.shape[..<axis].reduce(1, *)
        x.withElements(as: T.self) { values in
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * n * inner + i
                    var best = values[base], bestIndex = 0
                    for j in 1..<max(n, 1) {
                        let v = values[base + j * inner]
                        let better = isMax ? (v > best || (selectLast && v == best)) : (v < best || (selectLast && v == best))
                        if better { best = v; bestIndex = j }
                    }
                    result[o * inner + i] = Int64(bestIndex)
                }
            }
        }
    }
}

/// ArrayFeatureExtractor's common case without gather's bookkeeping: the int64 `indices` of a
/// numeric vector `x`, as shape [1, indices.count]. nil for other dtypes.
private func pickedFromVector(_ x: Tensor, _ indices: Tensor) throws -> Tensor? {
    guard indices.dtype == .int64, x.dtype != .string else { return nil }
    let n = indices.count, dim = x.shape[0], size = x.dtype.byteSize
    let out = try Tensor(uninitialized: x.dtype, shape: [1, n])
    try indices.withElements(as: Int64.self) { picks in
        for k in 0..<n {
            let i = picks[k] < 0 ? Int(picks[k]) + dim : Int(picks[k])
            guard i >= 0, i < dim else {
                throw KerfError.invalidArgument("ArrayFeatureExtractor index \(picks[k]) is out of range for \(dim) values")
            }
            (out.storage.pointer + k * size).copyMemory(from: x.storage.pointer + i * size, byteCount: size)
        }
    }
    return out
}
