import FoundationEssentials
import KerfCore

/// What a quantization call did. Encodes to the JSON the C API and the Python binding return
/// (snake_case keys).
public struct QuantizeReport: Codable, Sendable {
    /// A node whose weight was quantized.
    public struct NodeEntry: Codable, Sendable {
        public var name: String
        public var opType: String
        public var weight: String
        /// Smallest and largest weight scale (equal when per tensor).
        public var weightScaleMin: Float
        public var weightScaleMax: Float
        public var weightScales: Int
        /// Static mode: the input's (and, when quantized, the output's) scale and zero point.
        @NullEncoded public var inputScale: Float?
        @NullEncoded public var inputZeroPoint: Int?
        @NullEncoded public var outputScale: Float?
        @NullEncoded public var outputZeroPoint: Int?
        /// SQNR in dB of the node's output (as its readers see it) against the float model, on
        /// the calibration data; nil without data.
        @NullEncoded public var sqnrDb: Double?
    }

    /// A node, weight or table kept in float, and why.
    public struct FloatNode: Codable, Sendable {
        public var name: String
        public var reason: String
    }

    /// A calibrated activation (static mode).
    public struct Activation: Codable, Sendable {
        public var name: String
        /// Observed range and the range quantized (after percentile/entropy clipping).
        public var min: Float
        public var max: Float
        public var low: Float
        public var high: Float
        public var scale: Float
        public var zeroPoint: Int
    }

    /// The quantized model against the float model on the validation or calibration data.
    public struct Agreement: Codable, Sendable {
        /// "validation" or "calibration": the data measured.
        public var data: String
        public var samples: Int
        /// Fraction of samples whose first output gives the same class (classifiers only).
        @NullEncoded public var top1Agreement: Double?
        /// Over all float outputs, joined.
        public var cosine: Double
        public var maxAbsError: Double
        public var relativeError: Double
        public var sqnrDb: Double
    }

    public var mode: String
    public var method: String
    public var activationType: String
    public var perChannel: Bool
    public var nodes: [NodeEntry] = []
    public var float: [FloatNode] = []
    public var activations: [Activation] = []
    /// Gather tables stored as int8.
    public var embeddings: [String] = []
    /// SmoothQuant: the weights whose input channels were rescaled.
    public var smoothed: [String] = []
    @NullEncoded public var calibrationBatches: Int?
    public var opsetBefore: Int
    public var opsetAfter: Int
    /// Serialized model size before and after, and after / before.
    public var bytesBefore = 0
    public var bytesAfter = 0
    public var sizeRatio = 1.0
    @NullEncoded public var agreement: Agreement?

    init(options: QuantizeOptions, opset: Int) {
        mode = options.mode.rawValue
        method = options.mode == .static ? options.method.name : "none"
        activationType = options.activationType.rawValue
        perChannel = options.perChannel
        opsetBefore = opset
        opsetAfter = opset
    }

    /// The report as JSON with snake_case keys.
    public func json() throws -> String { try snakeCaseJSON(self) }
}
