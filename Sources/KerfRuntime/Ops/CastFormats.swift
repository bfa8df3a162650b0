import KerfCore

// Cast to and from the storage-only element types: float8 (e4m3fn, e4m3fnuz, e5m2,
// e5m2fnuz, e8m0), float4e2m1 and the 4-/2-bit integers (kept unpacked, one element per byte;
// signed ones sign-extended). Conversions follow the ONNX reference (ml_dtypes):
// round to nearest even; `saturate` clamps out-of-range floats to the largest finite value,
// otherwise they become inf (e5m2) or NaN; float4e2m1 always saturates; NaN -> 0 for integers;
// floats -> 4/2-bit integers truncate toward zero and keep the low bits.

/// A small float format: sign, `expBits` exponent bits, `manBits` mantissa bits.
private struct MiniFloat: Sendable {
    enum Special: Sendable { case ieee, finiteOnly, unsignedZero, none }
    let expBits: Int, manBits: Int, bias: Int, special: Special

    var signBit: UInt8 { UInt8(1 << (expBits + manBits)) }
    /// Largest positive finite code.
    var maxCode: Int {
        let all = (1 << (expBits + manBits)) - 1
        switch special {
        case .ieee: return all - (1 << manBits)
        case .finiteOnly: return all - 1
        case .unsignedZero, .none: return all
        }
    }
    var nanCode: UInt8 {
        switch special {
        case .ieee: return UInt8(((1 << expBits) - 1) << manBits | (1 << (manBits - 1)))
        case .finiteOnly: return UInt8((1 << (expBits + manBits)) - 1)
        case .unsignedZero: return 0x80
        case .none: return signBit  // ml_dtypes maps NaN to -0 in float4e2m1
        }
    }

    func decode(_ code: UInt8) -> Float {
        let magnitudeBits = expBits + manBits
        let negative = (Int(code) >> magnitudeBits) & 1 == 1
        let magnitude = Int(code) & ((1 << magnitudeBits) - 1)
        let e = magnitude >> manBits, m = magnitude & ((1 << manBits) - 1)
        switch special {
        case .unsignedZero where code == 0x80: return .nan
        case .finiteOnly where magnitude == (1 << magnitudeBits) - 1: return .nan
        case .ieee where e == (1 << expBits) - 1: return m == 0 ? (negative ? -.infinity : .infinity) : .nan
        default: break
        }
        let value: Double = e == 0
            ? Double(m) * pow2(1 - bias - manBits)
            : (1 + Double(m) / Double(1 << manBits)) * pow2(e - bias)
        return Float(negative ? -value : value)
    }

    func encode(_ v: Double, saturate: Bool, table: [Float]) -> UInt8 {
        if v.isNaN { return nanCode }
        let negative = v.sign == .minus
        let sign: UInt8 = negative ? signBit : 0
        let a = Swift.abs(v)
        let top = maxCode
        let maxValue = Double(table[top])
        func overflow() -> UInt8 {
            if saturate || special == .none { return UInt8(top) | sign }
            switch special {
            case .ieee: return UInt8(((1 << expBits) - 1) << manBits) | sign
            case .finiteOnly: return nanCode | sign
            default: return nanCode
            }
        }
        if a.isInfinite { return overflow() }
        var code: Int
        if a >= maxValue {
            let half = maxValue + (maxValue - Double(table[top - 1])) / 2
            if a < half || (a == half && top & 1 == 0) { code = top } else { return overflow() }
        } else {
            // Largest code whose value is <= a (values grow with the code).
            var lo = 0, hi = top
            while hi - lo > 1 {
                let mid = (lo + hi) / 2
                if Double(table[mid]) <= a { lo = mid } else { hi = mid }
            }
            let below = Double(table[lo]), above = Double(table[hi])
            if a - below < above - a { code = lo } else if above - a < a - below { code = hi } else { code = lo & 1 == 0 ? lo : hi }
            if a == below { code = lo }
        }
        if code == 0 && special == .unsignedZero { return 0 }
        return UInt8(code) | sign
    }
}

private func pow2(_ e: Int) -> Double { Double(sign: .plus, exponent: e, significand: 1) }

private let e4m3fn = MiniFloat(expBits: 4, manBits: 3, bias: 7, special: .finiteOnly)
private let e4m3fnuz = MiniFloat(expBits: 4, manBits: 3, bias: 8, special: .unsignedZero)
private let e5m2 = MiniFloat(expBits: 5, manBits: 2, bias: 15, special: .ieee)
private let e5m2fnuz = MiniFloat(expBits: 5, manBits: 2, bias: 16, special: .unsignedZero)
private let e2m1 = MiniFloat(expBits: 2, manBits: 1, bias: 1, special: .none)

private func decodeTable(_ f: MiniFloat, codes: Int) -> [Float] { (0..<codes).map { f.decode(UInt8($0)) } }
private let e4m3fnTable = decodeTable(e4m3fn, codes: 256)
private let e4m3fnuzTable = decodeTable(e4m3fnuz, codes: 256)
private let e5m2Table = decodeTable(e5m2, codes: 256)
private let e5m2fnuzTable = decodeTable(e5m2fnuz, codes: 256)
private let e2m1Table = decodeTable(e2m1, codes: 16)

private func miniFloat(_ dtype: DType) -> (MiniFloat, [Float])? {
    switch dtype {
    case .float8e4m3fn: return (e4m3fn, e4m3fnTable)
    case .float8e4m3fnuz: return (e4m3fnuz, e4m3fnuzTable)
    case .float8e5m2: return (e5m2, e5m2Table)
    case .float8e5m2fnuz: return (e5m2fnuz, e5m2fnuzTable)
    case .float4e2m1: return (e2m1, e2m1Table)
    default: return nil
    }
}

/// Bits of the unpacked 4-/2-bit integer types, and whether they are signed.
private func narrowInteger(_ dtype: DType) -> (bits: Int, signed: Bool)? {
    switch dtype {
    case .int4: return (4, true)
    case .uint4: return (4, false)
    case .int2: return (2, true)
    case .uint2: return (2, false)
    default: return nil
    }
}

/// True for the dtypes this file converts (Cast routes them here).
func isStorageOnlyType(_ dtype: DType) -> Bool {
    miniFloat(dtype) != nil || narrowInteger(dtype) != nil || dtype == .float8e8m0
}

/// float -> float8e8m0 (a power of two 2^(code - 127); 0xFF is NaN), as onnx.numpy_helper.to_float8e8m0.
private func encodeE8M0(_ f: Float, saturate: Bool, roundMode: String) -> UInt8 {
    let bits = f.bitPattern
    var exponent = Int((bits >> 23) & 0xFF)
    if exponent == 0xFF { return 0xFF }
    switch roundMode {
    case "nearest":
        let g = bits & 0x400000 != 0, r = bits & 0x200000 != 0, s = bits & 0x1FFFFF != 0
        if g && (r || s || exponent > 0) && !(saturate && exponent == 0xFE) { exponent += 1 }
    case "down":
        break
    default:  // "up"
        if bits & 0x7FFFFF != 0 && !(saturate && exponent == 0xFE) { exponent += 1 }
    }
    return UInt8(exponent)
}

/// Converts a tensor of a storage-only dtype into one Kerf computes with: small floats to
/// float32, 4-/2-bit integers to int8 / uint8.
private func widened(_ x: Tensor) throws -> Tensor {
    if let (_, table) = miniFloat(x.dtype) {
        var out = try Tensor(uninitialized: .float, shape: x.shape)
        let mask = table.count - 1
        x.withElements(as: UInt8.self) { src in
            out.withMutableElements(as: Float.self) { dst in for i in 0..<src.count { dst[i] = table[Int(src[i]) & mask] } }
        }
        return out
    }
    if x.dtype == .float8e8m0 {
        var out = try Tensor(uninitialized: .float, shape: x.shape)
        x.withElements(as: UInt8.self) { src in
            out.withMutableElements(as: Float.self) { dst in
                for i in 0..<src.count {
                    dst[i] = src[i] == 0xFF ? .nan : Float(sign: .plus, exponent: Int(src[i]) - 127, significand: 1)
                }
            }
        }
        return out
    }
    if let (bits, signed) = narrowInteger(x.dtype) {
        var out = try Tensor(uninitialized: signed ? .int8 : .uint8, shape: x.shape)
        let mask = UInt8((1 << bits) - 1), signMask = UInt8(1 << (bits - 1))
        x.withElements(as: UInt8.self) { src in
            out.withMutableElements(as: UInt8.self) { dst in
                for i in 0..<src.count {
                    var v = src[i] & mask
                    if signed && v & signMask != 0 { v |= ~mask }
                    dst[i] = v
                }
            }
        }
        return out
    }
    return x
}

/// Cast where the source or the target is a storage-only dtype.
func castStorageOnly(_ x: Tensor, to target: DType, saturate: Bool, roundMode: String) throws -> Tensor {
    guard x.dtype != .string, target != .string else {
        throw KerfError.unsupported("Cast between \(x.dtype) and \(target) is not supported")
    }
    let source = try widened(x)
    if !isStorageOnlyType(target) { return try cast(source, to: target) }
    var out = try Tensor(uninitialized: target, shape: x.shape)
    if let (bits, signed) = narrowInteger(target) {
        let values: [Int64]
        if source.dtype.isFloatingPoint {
            values = try cast(source, to: .double).withElements(as: Double.self) { xs in
                xs.map { v in
                    guard v.isFinite, Swift.abs(v) < 9.2e18 else { return 0 }
                    return Int64(v.rounded(.towardZero))
                }
            }
        } else {
            values = try cast(source, to: .int64).array(of: Int64.self)
        }
        let mask = Int64((1 << bits) - 1), signMask = Int64(1 << (bits - 1))
        out.withMutableElements(as: UInt8.self) { dst in
            for i in 0..<values.count {
                var v = values[i] & mask
                if signed && v & signMask != 0 { v |= ~mask }
                dst[i] = UInt8(truncatingIfNeeded: v)
            }
        }
        return out
    }
    if target == .float8e8m0 {
        let floats = try cast(source, to: .float)
        floats.withElements(as: Float.self) { src in
            out.withMutableElements(as: UInt8.self) { dst in
                for i in 0..<src.count { dst[i] = encodeE8M0(src[i], saturate: saturate, roundMode: roundMode) }
            }
        }
        return out
    }
    guard let (format, table) = miniFloat(target) else { throw KerfError.unsupported("Cast to \(target) is not supported") }
    let doubles = try cast(source, to: .double)
    doubles.withElements(as: Double.self) { src in
        out.withMutableElements(as: UInt8.self) { dst in
            for i in 0..<src.count { dst[i] = format.encode(src[i], saturate: saturate, table: table) }
        }
    }
    return out
}
