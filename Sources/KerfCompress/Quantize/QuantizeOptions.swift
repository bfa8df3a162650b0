import KerfCore
import KerfRuntime

/// How activations are quantized.
public enum QuantizationMode: String, Sendable {
    /// Weights int8 in the file; activations quantized at run time
    /// (DynamicQuantizeLinear -> MatMulInteger -> Mul). Needs no calibration data.
    case dynamic
    /// QuantizeLinear/DequantizeLinear pairs with calibrated activation ranges.
    case `static`
}

/// How a calibrated activation range is chosen from the observed values.
public enum CalibrationMethod: Sendable, Equatable {
    /// [min, max] of everything observed.
    case minMax
    /// Clip |x| at the given percentile (e.g. 99.99) of its distribution.
    case percentile(Double)
    /// Clip |x| where the KL divergence between the clipped and the quantized distribution is
    /// smallest (TensorRT's entropy calibration).
    case entropy

    public var name: String {
        switch self {
        case .minMax: return "minmax"
        case .percentile: return "percentile"
        case .entropy: return "entropy"
        }
    }
}

/// Element type of quantized activations (weights are always int8).
public enum ActivationType: String, Sendable {
    /// U8S8, the default: the form ONNX Runtime's x86 int8 kernels run fastest
    /// (docs/quantization.md, "Activation type").
    case uint8
    /// S8S8.
    case int8

    var dtype: DType { self == .uint8 ? .uint8 : .int8 }
    var range: (min: Int, max: Int) { self == .uint8 ? (0, 255) : (-128, 127) }
}

/// Options of `quantize(_:options:calibration:progress:)`.
public struct QuantizeOptions: Sendable {
    public var mode: QuantizationMode = .dynamic
    public var method: CalibrationMethod = .minMax
    public var activationType: ActivationType = .uint8
    /// One weight scale per output channel (axis 0 of Conv W, axis 1 of MatMul B[K, N]) instead
    /// of one per tensor.
    public var perChannel = true
    /// Op types whose weights are quantized (Conv is static-only: dynamic mode never emits ConvInteger).
    public var opTypes: Set<String> = ["Conv", "MatMul", "Gemm"]
    /// Weights, node names or op types to keep in float.
    public var exclude = NameFilter()
    /// Constant Gather tables (embeddings) stored as int8 (one scale per table), dequantized
    /// after the lookup: true always, false never, nil (the default) where the table is read by
    /// Gathers only and its int8 form keeps `embeddingMinimumSQNR` against the float table.
    public var quantizeEmbeddings: Bool? = nil
    /// The SQNR in dB (10·log10(Σw² / Σ(w − ŵ)²)) a table's int8 form must reach to be quantized by
    /// default; 30 dB is a relative RMS error of about 3%.
    public var embeddingMinimumSQNR = 30.0
    /// With a value, nodes are put back to float, worst SQNR first, until the relative L2 error of
    /// the model's float outputs against the float model is at most this (on the calibration data).
    public var autoTolerance: Double? = nil
    /// With a value α in [0, 1], SmoothQuant moves activation outliers into the weights of
    /// MatMul/Gemm before quantizing: X·W = (X / s)·(s W), s_j = max|X_j|^α / max|W_j|^(1-α).
    public var smoothQuantAlpha: Double? = nil
    /// Histogram resolution for percentile and entropy calibration.
    public var histogramBins = 2048
    /// Session settings for calibration and evaluation runs.
    public var session = SessionOptions()

    public init() {}
}
