import KerfCore
import KerfCKernels
import KerfKernels

/// A byte table (`QuantizedEpilogue.Table`) made ready to run: kerf.QuantizedTable's and
/// kerf.QuantizedChannelTable's, and the table stage of kerf.QuantizedMatMul's epilogue.
struct ByteTable {
    /// table[c * 256 + byte] (c = 0 without channels).
    let table: [UInt8]
    let channels: Int
    let outputType: DType
    /// The least rank of the output (from the chain's constants, whose dims are 1 but the
    /// last): X's shape gets leading 1s up to it, as broadcasting gave them.
    let outputRank: Int
    private let arithmetic: ChannelAffine?

    init(_ stage: QuantizedEpilogue.Table, _ c: OperatorContext) throws {
        let perChannel = stage.perChannel
        let t = try c.requiredConstant(named: stage.bytes, "table")
        guard t.dtype == .uint8, t.count >= 256, t.count % 256 == 0, perChannel || t.count == 256 else {
            throw KerfError.invalidModel("\(c.node.label): the table must be uint8 [\(perChannel ? "C, " : "")256]")
        }
        table = t.array(of: UInt8.self)
        channels = t.count / 256
        let type = stage.outputType
        outputType = type
        outputRank = stage.rank
        // Tables of DequantizeLinear -> x k[c] + shift[c] -> QuantizeLinear may come with that
        // arithmetic, run in sixteen lanes where it gives the table's bytes.
        var arithmetic: ChannelAffine?
        if perChannel, let stage = stage.affine, cpuHasAVX512BW {
            let x = try QuantizationParameters(c, stage.x, "X"), y = try QuantizationParameters(c, stage.y, "Y")
            let k = try floatScalars(try c.requiredConstant(named: stage.k, "k")), shift = try floatScalars(try c.requiredConstant(named: stage.shift, "shift"))
            guard k.count == channels, shift.count == channels, let range = quantizedRange(y.dtype), y.dtype == type else {
                throw KerfError.invalidModel("\(c.node.label): arithmetic parameters do not fit the table")
            }
            let affine = ChannelAffine(signed: x.dtype == .int8, xZero: x.zero, xScale: x.scale, k: k, shift: shift, relu: false,
                                       yScale: y.scale, yZero: y.zero, lo: range.lo, hi: range.hi)
            if y.scale.isNormal && (1 / y.scale).isNormal && affine.reproduces(table, channels: channels) {
                arithmetic = affine
            }
        }
        self.arithmetic = arithmetic
    }

    /// Throws unless X's last axis has the table's channels.
    func check(_ shape: [Int]) throws {
        guard channels == 1 || (shape.count >= 1 && shape[shape.count - 1] == channels) else {
            throw KerfError.shapeMismatch("X of shape \(shape) does not have \(channels) channels last")
        }
    }

    func outputShape(_ shape: [Int]) -> [Int] {
        shape.count >= outputRank ? shape : [Int](repeating: 1, count: outputRank - shape.count) + shape
    }

    /// y[i] = table[channel of i][x[i]] for `count` bytes (a whole number of channel rows);
    /// y may be x.
    func apply(_ x: UnsafeRawPointer, count: Int, into y: UnsafeMutableRawPointer) {
        if let arithmetic {
            arithmetic.apply(x, pixels: count / channels, channels: channels, into: y)
            return
        }
        let source = x.assumingMemoryBound(to: UInt8.self), target = y.assumingMemoryBound(to: UInt8.self)
        table.withUnsafeBufferPointer { t in
            if channels == 1 {
                lookUpBytes(source, count: count, table: t.baseAddress!, into: target)
            } else {
                lookUpChannelBytes(source, pixels: count / channels, channels: channels, tables: t.baseAddress!, into: target)
            }
        }
    }
}

extension QuantizedEpilogue.Table {
    /// The table of a kerf.QuantizedTable(X, table uint8 [256]) or kerf.QuantizedChannelTable(X,
    /// table uint8 [C, 256][, x_scale, x_zp, k, shift, y_scale, y_zp]) node, attributes to
    /// (the output's 8-bit type) and rank.
    init(tableNode node: Node) throws {
        let input = { (i: Int) -> String? in i < node.inputs.count && !node.inputs[i].isEmpty ? node.inputs[i] : nil }
        guard let bytes = input(1) else { throw KerfError.invalidModel("\(node.label): table must be a constant") }
        let perChannel = node.opType == "QuantizedChannelTable"
        let to = try FusedAttributes.int("to", of: node, default: Int(DType.uint8.rawValue))
        guard let type = DType(rawValue: Int32(truncatingIfNeeded: to)), type == .uint8 || type == .int8 else {
            throw KerfError.invalidModel("\(node.label): the table's output type must be uint8 or int8")
        }
        var affine: QuantizedEpilogue.AffineTable?
        if perChannel, node.inputs.count >= 8, input(2) != nil {
            let names = (2...7).map { input($0) ?? "" }
            affine = .init(x: .init(scale: names[0], zero: names[1]), k: names[2], shift: names[3], y: .init(scale: names[4], zero: names[5]))
        }
        self.init(bytes: bytes, perChannel: perChannel, outputType: type, rank: try FusedAttributes.int("rank", of: node, default: 0), affine: affine)
    }
}
