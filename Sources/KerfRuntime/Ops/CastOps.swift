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
    let source = x.dtype == .float16 || x.dtype == .bfloat16 ? x.convertedToFloat32() : x
    let via = target == .float16 || target == .bfloat16 ? DType.float : target
    var out: Tensor
    if via == .bool {
        let values = try readDoubles(source)
        out = Tensor(shape: x.shape, values: values.map { $0 != 0 })
    } else if source.dtype == .bool {
        let bits = source.array(of: UInt8.self)
        out = try makeTensor(via, shape: x.shape, bits.map { Double($0 != 0 ? 1 : 0) })
    } else if !source.dtype.isFloatingPoint && !via.isFloatingPoint {
        out = try integerCast(source, to: via)
    } else {
        out = try makeTensor(via, shape: x.shape, try readDoubles(source))
    }
    return via == target ? out : out.convertedFromFloat32(to: target)
}

private func readDoubles(_ t: Tensor) throws -> [Double] {
    if t.dtype == .bool { return t.array(of: UInt8.self).map { Double($0) } }
    struct Read: NumericBody {
        let t: Tensor
        func run<T: NumericElement>(_: T.Type) throws -> [Double] { t.withElements(as: T.self) { $0.map { $0.doubleValue } } }
    }
    return try dispatchNumeric(t.dtype, Read(t: t))
}

private func makeTensor(_ dtype: DType, shape: [Int], _ values: [Double]) throws -> Tensor {
    struct Make: NumericBody {
        let shape: [Int], values: [Double]
        func run<T: NumericElement>(_: T.Type) throws -> Tensor { Tensor(shape: shape, values: values.map { T(fromDouble: $0) }) }
    }
    return try dispatchNumeric(dtype, Make(shape: shape, values: values))
}

/// Integer to integer through the 64-bit two's complement pattern (truncating, like C).
private func integerCast(_ t: Tensor, to target: DType) throws -> Tensor {
    struct Read: NumericBody {
        let t: Tensor
        func run<T: NumericElement>(_: T.Type) throws -> [UInt64] {
            t.withElements(as: T.self) { xs in
                xs.map { v in
                    if let i = v as? any FixedWidthInteger { return UInt64(truncatingIfNeeded: Int64(truncatingIfNeeded: i)) }
                    return 0
                }
            }
        }
    }
    struct Write: NumericBody {
        let shape: [Int], bits: [UInt64]
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            guard let I = T.self as? any FixedWidthInteger.Type else { throw KerfError.internal("integer cast to \(T.self)") }
            return Tensor(shape: shape, values: bits.map { I.init(truncatingIfNeeded: $0) as! T })
        }
    }
    return try dispatchNumeric(target, Write(shape: t.shape, bits: try dispatchNumeric(t.dtype, Read(t: t))))
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
                    let source = x.dtype == .float16 || x.dtype == .bfloat16 ? x.convertedToFloat32() : x
                    let values = try readDoubles(source)
                    let a = try normalizeAxis(axis, rank: x.rank)
                    let n = x.shape[a], inner = x.shape[(a + 1)...].reduce(1, *), outer = x.shape[..<a].reduce(1, *)
                    guard n > 0 else { throw KerfError.shapeMismatch("\(name) over an empty axis") }
                    var result = [Int64](repeating: 0, count: outer * inner)
                    for o in 0..<outer {
                        for i in 0..<inner {
                            var best = values[o * n * inner + i], bestIndex = 0
                            for j in 1..<max(n, 1) {
                                let v = values[(o * n + j) * inner + i]
                                let better = isMax ? (v > best || (selectLast && v == best)) : (v < best || (selectLast && v == best))
                                if better { best = v; bestIndex = j }
                            }
                            result[o * inner + i] = Int64(bestIndex)
                        }
                    }
                    var shape = x.shape
                    if keepDims { shape[a] = 1 } else { shape.remove(at: a) }
                    return [Tensor(shape: shape, values: result)]
                }
            }
        }
        // ai.onnx.ml: gathers along the last axis of X.
        r["ai.onnx.ml:ArrayFeatureExtractor"] = { _ in
            ClosureOperator { inputs in
                let x = try inputs.required(0), indices = try inputs.required(1)
                guard x.rank >= 1 else { throw KerfError.shapeMismatch("ArrayFeatureExtractor needs rank >= 1") }
                let picked = try gather(x, indices.reshaped([indices.count]), axis: x.rank - 1)
                return [x.rank == 1 ? picked.reshaped([1, indices.count]) : picked]
            }
        }
    }
}
