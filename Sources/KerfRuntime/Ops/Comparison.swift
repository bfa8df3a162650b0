import KerfCore
import KerfKernels

// Comparisons (Equal, Less, LessOrEqual, Greater, GreaterOrEqual), logical ops (Not, And, Or,
// Xor) and Where, all with ONNX broadcasting. Bool tensors hold one byte per element, 0 or 1.

enum ComparisonKind { case equal, less, lessOrEqual, greater, greaterOrEqual }

/// a (op) b -> bool, broadcasting; a and b share a dtype (numeric, bool, or string for Equal).
func compareTensors(_ kind: ComparisonKind, _ a: Tensor, _ b: Tensor) throws -> Tensor {
    guard a.dtype == b.dtype else {
        throw KerfError.shapeMismatch("operands have different dtypes (\(a.dtype) and \(b.dtype))")
    }
    guard let shape = broadcastShape(a.shape, b.shape) else {
        throw KerfError.shapeMismatch("shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    if a.dtype == .float16 || a.dtype == .bfloat16 {
        return try compareTensors(kind, a.convertedToFloat32(), b.convertedToFloat32())
    }
    if a.dtype == .string {
        guard kind == .equal else { throw KerfError.unsupported("only Equal compares strings") }
        guard a.strings.count == a.count, b.strings.count == b.count else {
            throw KerfError.invalidArgument("string tensor has the wrong number of elements")
        }
        let ia = Array(0..<a.count), ib = Array(0..<b.count)
        var out = try Tensor(uninitialized: .bool, shape: shape)
        ia.withUnsafeBufferPointer { x in
            ib.withUnsafeBufferPointer { y in
                out.withMutableElements(as: UInt8.self) { z in
                    broadcastBinary(x.baseAddress!, a.shape, y.baseAddress!, b.shape, z.baseAddress!, shape) {
                        a.strings[$0] == b.strings[$1] ? 1 : 0
                    }
                }
            }
        }
        return out
    }
    struct Body: NumericBody {
        let kind: ComparisonKind, a: Tensor, b: Tensor, shape: [Int]
        func run<T: NumericElement>(_: T.Type) throws -> Tensor {
            var out = try Tensor(uninitialized: .bool, shape: shape)
            a.withElements(as: T.self) { x in
                b.withElements(as: T.self) { y in
                    out.withMutableElements(as: UInt8.self) { z in
                        let px = x.baseAddress!, py = y.baseAddress!, pz = z.baseAddress!
                        switch kind {
                        case .equal: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { $0 == $1 ? 1 : 0 }
                        case .less: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { $0 < $1 ? 1 : 0 }
                        case .lessOrEqual: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { $0 <= $1 ? 1 : 0 }
                        case .greater: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { $0 > $1 ? 1 : 0 }
                        case .greaterOrEqual: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { $0 >= $1 ? 1 : 0 }
                        }
                    }
                }
            }
            return out
        }
    }
    if a.dtype == .bool {
        // Compare as 0/1 bytes (nonzero bytes normalized first).
        return try dispatchNumeric(.uint8, Body(kind: kind, a: normalizedBool(a), b: normalizedBool(b), shape: shape))
    }
    return try dispatchNumeric(a.dtype, Body(kind: kind, a: a, b: b, shape: shape))
}

/// A bool tensor viewed as uint8 with every byte 0 or 1.
private func normalizedBool(_ t: Tensor) -> Tensor {
    let clean = t.withElements(as: UInt8.self) { !$0.contains { $0 > 1 } }
    let bytes = clean ? t.reshaped(t.shape) : t.withElements(as: UInt8.self) { Tensor(shape: t.shape, values: $0.map { $0 != 0 ? UInt8(1) : 0 }) }
    return Tensor(dtype: .uint8, shape: t.shape, storage: bytes.storage)
}

private func requireBool(_ t: Tensor, _ op: String) throws {
    guard t.dtype == .bool else { throw KerfError.unsupported("\(op) takes bool tensors, got \(t.dtype)") }
}

enum LogicalKind { case and, or, xor }

/// Elementwise logical op of two bool tensors with broadcasting.
func logicalTensors(_ kind: LogicalKind, _ a: Tensor, _ b: Tensor, _ op: String) throws -> Tensor {
    try requireBool(a, op)
    try requireBool(b, op)
    guard let shape = broadcastShape(a.shape, b.shape) else {
        throw KerfError.shapeMismatch("shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    var out = try Tensor(uninitialized: .bool, shape: shape)
    a.withElements(as: UInt8.self) { x in
        b.withElements(as: UInt8.self) { y in
            out.withMutableElements(as: UInt8.self) { z in
                let px = x.baseAddress!, py = y.baseAddress!, pz = z.baseAddress!
                switch kind {
                case .and: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { ($0 != 0 && $1 != 0) ? 1 : 0 }
                case .or: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { ($0 != 0 || $1 != 0) ? 1 : 0 }
                case .xor: broadcastBinary(px, a.shape, py, b.shape, pz, shape) { (($0 != 0) != ($1 != 0)) ? 1 : 0 }
                }
            }
        }
    }
    return out
}

/// Where(condition, x, y): x where condition is true, else y; all three broadcast together.
func whereSelect(_ condition: Tensor, _ x: Tensor, _ y: Tensor) throws -> Tensor {
    try requireBool(condition, "Where condition")
    guard x.dtype == y.dtype else {
        throw KerfError.shapeMismatch("Where: x and y have different dtypes (\(x.dtype) and \(y.dtype))")
    }
    guard let xy = broadcastShape(x.shape, y.shape), let shape = broadcastShape(condition.shape, xy) else {
        throw KerfError.shapeMismatch("Where: shapes \(condition.shape), \(x.shape) and \(y.shape) do not broadcast")
    }
    if x.dtype == .string {
        return try pooledStrings(x, y, shape: shape) { try whereSelect(condition, $0, $1) }
    }
    struct Select: ByteElementBody {
        let condition: Tensor, x: Tensor, y: Tensor, shape: [Int]
        func run<E>(_: E.Type) throws -> Tensor {
            if let out = try repeatingCondition(E.self) { return out }
            let xs = try materializeBroadcast(x, to: shape), ys = try materializeBroadcast(y, to: shape)
            let cs = try materializeBroadcast(condition, to: shape)
            var out = try Tensor(uninitialized: x.dtype, shape: shape)
            xs.withElements(as: E.self) { px in
                ys.withElements(as: E.self) { py in
                    cs.withElements(as: UInt8.self) { pc in
                        out.withMutableElements(as: E.self) { po in
                            for i in 0..<po.count { po[i] = pc[i] != 0 ? px[i] : py[i] }
                        }
                    }
                }
            }
            return out
        }

        /// x and y each of the output's shape or one element, and a condition whose dims are the
        /// output's last ones (an attention mask [1, 1, S, S] over scores [B, H, S, S]): selected
        /// block by block with nothing materialized. Nil for other shapes.
        func repeatingCondition<E>(_: E.Type) throws -> Tensor? {
            let count = shape.reduce(1, *), cc = condition.count
            let c = Array(condition.shape.drop { $0 == 1 })
            guard cc > 0, count > 0, c.count <= shape.count, Array(shape.suffix(c.count)) == c,
                  x.count == count && x.shape == shape || x.count == 1, y.count == count && y.shape == shape || y.count == 1 else { return nil }
            var out = try Tensor(uninitialized: x.dtype, shape: shape)
            x.withElements(as: E.self) { px in
                y.withElements(as: E.self) { py in
                    condition.withElements(as: UInt8.self) { pc in
                        out.withMutableElements(as: E.self) { po in
                            let xStep = px.count == 1 ? 0 : 1, yStep = py.count == 1 ? 0 : 1
                            for block in stride(from: 0, to: count, by: cc) {
                                for j in 0..<cc {
                                    let i = block + j
                                    po[i] = pc[j] != 0 ? px[i * xStep] : py[i * yStep]
                                }
                            }
                        }
                    }
                }
            }
            return out
        }
    }
    return try dispatchBytes(x.dtype, "Where", Select(condition: condition, x: x, y: y, shape: shape))
}

/// `t` materialized at `shape` (which it broadcasts to); returned as is when already that shape.
func materializeBroadcast(_ t: Tensor, to shape: [Int]) throws -> Tensor {
    if t.shape == shape { return t }
    var out = try Tensor(uninitialized: t.dtype, shape: shape)
    let size = t.dtype.byteSize
    out.withMutableElements(as: UInt8.self) { dst in
        broadcastCopy(UnsafeRawPointer(t.storage.pointer), t.shape, elementSize: size, UnsafeMutableRawPointer(dst.baseAddress!), shape)
    }
    return out
}

enum ComparisonOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        let comparisons: [(String, ComparisonKind)] = [
            ("Equal", .equal), ("Less", .less), ("LessOrEqual", .lessOrEqual),
            ("Greater", .greater), ("GreaterOrEqual", .greaterOrEqual),
        ]
        for (name, kind) in comparisons {
            r[name] = { _ in ClosureOperator { [try compareTensors(kind, try $0.required(0), try $0.required(1))] } }
        }
        for (name, kind) in [("And", LogicalKind.and), ("Or", .or), ("Xor", .xor)] {
            r[name] = { _ in ClosureOperator { [try logicalTensors(kind, try $0.required(0), try $0.required(1), name)] } }
        }
        r["Not"] = { _ in
            ClosureOperator { inputs in
                let x = try inputs.required(0)
                try requireBool(x, "Not")
                return try [Tensor(dtype: .bool, shape: x.shape, storage: mapNumeric(Tensor(dtype: .uint8, shape: x.shape, storage: x.storage), UInt8.self) { $0 == 0 ? 1 : 0 }.storage)]
            }
        }
        r["Where"] = { _ in
            ClosureOperator { [try whereSelect(try $0.required(0), try $0.required(1), try $0.required(2))] }
        }
    }
}
