import FoundationEssentials
import KerfCore

// Constant and ConstantOfShape.

enum ConstantOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Constant"] = { c in
            let value = try constantValue(c)
            return ClosureOperator { _ in [value] }
        }
        r["ConstantOfShape"] = { c in
            let fill = try c.tensor("value") ?? Tensor(shape: [1], values: [Float(0)])
            guard fill.count == 1 else { throw KerfError.invalidModel("ConstantOfShape value must have one element") }
            return ClosureOperator { inputs in
                let dims = try intValues(try inputs.required(0, "shape"), "ConstantOfShape shape")
                guard dims.allSatisfy({ $0 >= 0 }) else { throw KerfError.invalidArgument("ConstantOfShape shape \(dims) has a negative dim") }
                let (count, overflow) = dims.reduce((1, false)) { acc, d in
                    let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                    return (p, acc.1 || o)
                }
                guard !overflow, count * Swift.max(fill.dtype.byteSize, 1) < (1 << 36) else {
                    throw KerfError.outOfMemory("ConstantOfShape shape \(dims) is too large")
                }
                if fill.dtype == .string { return [Tensor(shape: dims, strings: Array(repeating: fill.strings[0], count: count))] }
                let out = try Tensor(uninitialized: fill.dtype, shape: dims)
                let size = fill.dtype.byteSize
                for i in 0..<count { (out.storage.pointer + i * size).copyMemory(from: fill.storage.pointer, byteCount: size) }
                return [out]
            }
        }
    }

    /// The tensor a Constant node produces, from whichever value attribute it carries.
    static func constantValue(_ c: OperatorContext) throws -> Tensor {
        guard let attribute = c.node.attributes.first else { throw KerfError.invalidModel("Constant has no value attribute") }
        switch (attribute.name, attribute.value) {
        case ("value", .tensor(let t)): return t
        case ("value_float", .float(let f)): return Tensor(scalar: f)
        case ("value_floats", .floats(let fs)): return Tensor(shape: [fs.count], values: fs)
        case ("value_int", .int(let i)): return Tensor(scalar: i)
        case ("value_ints", .ints(let xs)): return Tensor(shape: [xs.count], values: xs)
        case ("value_string", .string(let s)): return Tensor(shape: [], strings: [s])
        case ("value_strings", .strings(let ss)): return Tensor(shape: [ss.count], strings: ss)
        case ("sparse_value", _): throw KerfError.unsupported("Constant with sparse_value is not supported")
        default: throw KerfError.invalidModel("Constant has an unexpected attribute '\(attribute.name)'")
        }
    }
}
