import KerfCore

/// Quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear (MatMulInteger,
/// ConvInteger and the QLinear products are with their float forms).
extension ShapeRules {
    static let quantization: [String: ShapeRule] = [
        // y's dtype: `output_dtype` (opset 21), else the zero point's, else uint8.
        "QuantizeLinear": { c in
            c.set(0, dtype: c.dtypeAttribute("output_dtype") ?? c.dtype(2) ?? (c.has(2) ? nil : .uint8), shape: c.shape(0))
        },
        // y's dtype: `output_dtype` (opset 23), else the scale's.
        "DequantizeLinear": { c in
            c.set(0, dtype: c.dtypeAttribute("output_dtype") ?? c.dtype(1) ?? .float, shape: c.shape(0))
        },
        "DynamicQuantizeLinear": { c in
            c.set(0, dtype: .uint8, shape: c.shape(0))
            c.set(1, dtype: .float, shape: [])
            c.set(2, dtype: .uint8, shape: [])
        },
    ]
}
