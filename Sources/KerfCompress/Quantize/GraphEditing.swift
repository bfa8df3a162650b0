import KerfCore
import KerfGraph

extension Graph {
    /// Stores quantized `values` (int8, or int32 for biases) under a name derived from `base`, with
    /// their scales and zero points (0, of the values' type), and returns the DequantizeLinear
    /// node that restores them (per channel along `axis` when there are several scales; the
    /// caller inserts it).
    func dequantizedConstant(_ base: String, values: Tensor, scales: [Float], axis: Int, names: NameAllocator) -> Node {
        let perChannel = scales.count > 1
        let q = addConstant(base + "_quantized", values, names: names)
        let scale = addConstant(base + "_scale", scaleTensor(scales), names: names)
        let zero = addConstant(base + "_zero_point", zeroPointTensor(0, dtype: values.dtype, count: perChannel ? scales.count : nil),
                               names: names)
        var node = Node(name: names.make(base + "_DequantizeLinear"), opType: "DequantizeLinear", inputs: [q, scale, zero],
                        outputs: [names.make(base + "_dequantized")])
        if perChannel { node.attributes = [Attribute(name: "axis", value: .int(Int64(axis)))] }
        return node
    }
}

/// A scalar zero point of `dtype` (uint8, int8 or int32) holding `value`.
func zeroPointTensor(_ value: Int, dtype: DType, count: Int? = nil) -> Tensor {
    let shape = count.map { [$0] } ?? []
    let n = count ?? 1
    switch dtype {
    case .uint8: return Tensor(shape: shape, values: [UInt8](repeating: UInt8(value), count: n))
    case .int8: return Tensor(shape: shape, values: [Int8](repeating: Int8(value), count: n))
    default: return Tensor(shape: shape, values: [Int32](repeating: Int32(value), count: n))
    }
}

/// A scale tensor: a scalar for one value, else a vector.
func scaleTensor(_ scales: [Float]) -> Tensor {
    scales.count == 1 ? Tensor(shape: [], values: scales) : Tensor(shape: [scales.count], values: scales)
}
