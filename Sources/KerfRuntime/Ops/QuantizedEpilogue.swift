import KerfCore
import KerfKernels

/// What a fused int8 product (kerf.QuantizedMatMul, kerf.QuantizedConv, kerf.DynamicQuantizedMatMul)
/// does with its int32 sums, stage by stage, as the optimizer's fusions assemble it
/// (Optimizer/QuantizedFusion.swift) and the operator runs it (`ProductEpilogue`). Stages run in
/// the order of the fields; a nil field is a stage the product does not have. Strings name values
/// of the graph: constants unless a field says "run-time".
///
/// A fused node holds its epilogue as inputs and attributes (`QuantizedProductNode` writes and
/// reads them); fusions change the typed value, never the node's inputs.
struct QuantizedEpilogue: Equatable {
    /// A bias added to the product.
    enum Bias: Equatable {
        /// An int32 bias [N] (or [1] for MatMul) and its float scale (1 or N values), as
        /// DequantizeLinear(values, scale) gives it: added to the sums, float outputs get
        /// values[j] * scale[j]. Static products only.
        case integer(values: String, scale: String)
        /// A float bias [1, ..., 1, N] added to the float output. `rank`: the constant's rank
        /// when above 1 (the output has at least that rank, as the graph's Add broadcast it),
        /// else 0; the dynamic product takes a bias [N] and no rank.
        case float(String, rank: Int)
    }

    /// A per-tensor 8-bit quantization: a float scale and a uint8 or int8 zero point.
    struct Quantization: Equatable {
        var scale: String
        var zero: String
    }

    /// The float output written in an attention's head layout: Reshape(product, shape) to
    /// [B, S, H, D], then Transpose(perm 0,2,1,3, or 0,2,3,1 with `keysTransposed`).
    struct Heads: Equatable {
        /// The Reshape's shape, a run-time value (int64 [4]).
        var shape: String
        var keysTransposed: Bool
    }

    /// A LayerNormalization over the last axis (stash type float) after the residual.
    struct LayerNorm: Equatable {
        /// Float [N].
        var scale: String
        /// Float [N], or none.
        var bias: String?
        var epsilon: Float
    }

    /// A run-time residual added to the float output, then maybe a LayerNorm (Ops/ProductTail.swift).
    struct Residual: Equatable {
        /// The run-time value added (the product's shape on the fused path).
        var value: String
        var layerNorm: LayerNorm?
    }

    /// A byte table applied to a requantized output (a kerf.QuantizedTable or
    /// kerf.QuantizedChannelTable that read it, fused; `ByteTable`).
    struct Table: Equatable {
        /// uint8 [256], or [C, 256] with `perChannel`.
        var bytes: String
        var perChannel: Bool
        /// The table's output type (uint8 or int8).
        var outputType: DType
        /// The least rank of the output (from the table chain's constants).
        var rank: Int
        /// With a per-channel table: the arithmetic it tabulates, QuantizeLinear(DequantizeLinear(x)
        /// * k[c] + shift[c]), which may run instead where it gives the table's bytes.
        var affine: AffineTable?
    }

    /// The parameters of a per-channel table's arithmetic.
    struct AffineTable: Equatable {
        var x: Quantization
        /// Float [C] each.
        var k: String, shift: String
        var y: Quantization
    }

    var bias: Bias?
    /// Applied to the float output (Relu and Clip also narrow a requantized output's range).
    var activation: Activation = .none
    /// The output quantized to 8 bits: the integer sums requantized, or (`quantizesFloat`) the
    /// float output quantized as QuantizeLinear does. Static products only.
    var quantization: Quantization?
    var heads: Heads?
    var residual: Residual?
    var table: Table?

    /// True when the output is float (not quantized).
    var floatOutput: Bool { quantization == nil }

    /// True with a float bias.
    var hasFloatBias: Bool {
        if case .float? = bias { return true }
        return false
    }

    /// True when the float result is computed first and then quantized (a float bias, or an
    /// activation other than Relu and Clip, which fold into the requantization's bounds),
    /// instead of the integer sums being requantized.
    var quantizesFloat: Bool {
        switch activation {
        case .none, .relu, .clip: return hasFloatBias
        default: return true
        }
    }
}
