import KerfCore
import KerfKernels

// The pooling and normalization operators of channels-last images (domain "kerf", only in a
// session's private graph; see Optimizer/ChannelsLastLayout.swift): MaxPool (float, int8, uint8),
// AveragePool and GlobalAveragePool (float) with their ONNX attributes, on X[N, H, W, C] giving
// Y[N, OH, OW, C], and inference BatchNormalization (float) over the last axis. Results are
// bitwise equal to the NCHW operators' (same taps in the same order, the same arithmetic).

enum ChannelsLastOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        let domain = FusedQuantizedOps.domain
        r["\(domain):\(ChannelsLast.maxPool)"] = { c in
            let window = try WindowAttributes(c)
            guard let kernel = window.kernelShape, kernel.count == 2 else {
                throw KerfError.invalidModel("\(ChannelsLast.maxPool) needs a 2-D kernel_shape")
            }
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                switch x.dtype {
                case .int8: return [try pool(x, Int8.self, kernel: kernel, window: window) { x, y, channels, g, _, rows in
                    maxPoolChannelsLast(x, y, channels: channels, geometry: g, rows: rows, lowest: Int8.min)
                }]
                case .uint8: return [try pool(x, UInt8.self, kernel: kernel, window: window) { x, y, channels, g, _, rows in
                    maxPoolChannelsLast(x, y, channels: channels, geometry: g, rows: rows, lowest: UInt8.min)
                }]
                default: return [try pool(try channelsLastImages(x, "MaxPool"), Float.self, kernel: kernel, window: window) { x, y, channels, g, _, rows in
                    maxPoolChannelsLast(x, y, channels: channels, geometry: g, rows: rows, lowest: -Float.infinity)
                }]
                }
            }
        }
        r["\(domain):\(ChannelsLast.averagePool)"] = { c in
            let window = try WindowAttributes(c)
            let includePad = try c.int("count_include_pad", default: 0) != 0
            guard let kernel = window.kernelShape, kernel.count == 2 else {
                throw KerfError.invalidModel("\(ChannelsLast.averagePool) needs a 2-D kernel_shape")
            }
            return ClosureOperator { inputs in
                try [pool(try channelsLastImages(try inputs.required(0), "AveragePool"), Float.self, kernel: kernel, window: window) { x, y, channels, g, end, rows in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: channels) { sums in
                        averagePoolChannelsLast(x, y, channels: channels, geometry: g, padsEnd: end, countIncludePad: includePad,
                                                rows: rows, sums: sums.baseAddress!)
                    }
                }]
            }
        }
        r["\(domain):\(ChannelsLast.batchNormalization)"] = { c in
            let epsilon = try c.float("epsilon", default: 1e-5)
            return ClosureOperator { inputs in
                let x = try channelsLastImages(try inputs.required(0), "BatchNormalization")
                let channels = x.shape[3]
                let p = try (1...4).map { try inputs.required($0) }
                try checkBatchNormParameters(p[0], p[1], p[2], p[3], channels: channels)
                let (k, shift) = batchNormCoefficients(scale: p[0].array(of: Float.self), bias: p[1].array(of: Float.self),
                                                       mean: p[2].array(of: Float.self), variance: p[3].array(of: Float.self), epsilon: epsilon)
                let out = try Tensor(uninitialized: .float, shape: x.shape)
                let xs = x.storage.pointer.assumingMemoryBound(to: Float.self), ys = out.storage.pointer.assumingMemoryBound(to: Float.self)
                k.withUnsafeBufferPointer { k in
                    shift.withUnsafeBufferPointer { shift in
                        for p in 0..<(x.count / max(1, channels)) {
                            let base = p * channels
                            for c in 0..<channels { ys[base + c] = xs[base + c] * k[c] + shift[c] }
                        }
                    }
                }
                return [out]
            }
        }
        r["\(domain):\(ChannelsLast.globalAveragePool)"] = { _ in
            ClosureOperator { inputs in
                let x = try channelsLastImages(try inputs.required(0), "GlobalAveragePool")
                let batch = x.shape[0], positions = x.shape[1] * x.shape[2], channels = x.shape[3]
                let out = try Tensor(uninitialized: .float, shape: [batch, 1, 1, channels])
                let xp = x.storage.pointer.assumingMemoryBound(to: Float.self), yp = out.storage.pointer.assumingMemoryBound(to: Float.self)
                for n in 0..<batch {
                    globalAveragePoolChannelsLast(xp + n * positions * channels, yp + n * channels, positions: positions, channels: channels)
                }
                return [out]
            }
        }
    }
}

/// A float rank-4 tensor, else the error of `op` for it.
private func channelsLastImages(_ x: Tensor, _ op: String) throws -> Tensor {
    guard x.dtype == .float else { throw KerfError.unsupported("\(op) (channels-last) supports float, got \(x.dtype)") }
    guard x.rank == 4 else { throw KerfError.shapeMismatch("\(op) (channels-last) needs a rank-4 input, got \(x.shape)") }
    return x
}

/// Y[N, OH, OW, C] of a windowed pool of X[N, H, W, C] (elements of type T): `body(x, y,
/// channels, geometry, padsEnd, rows)` pools output rows `rows` of one image. Rows of all
/// images are split over the calling thread's OpenMP team (as many threads as the session
/// runs on): these pools sit between oneDNN convolutions, whose team would spin while another
/// pool ran them.
private func pool<T>(_ x: Tensor, _: T.Type, kernel: [Int], window: WindowAttributes,
                     _ body: (UnsafePointer<T>, UnsafeMutablePointer<T>, Int, WindowGeometry, [Int], Range<Int>) -> Void) throws -> Tensor {
    guard x.rank == 4 else { throw KerfError.shapeMismatch("pooling (channels-last) needs a rank-4 input, got \(x.shape)") }
    let batch = x.shape[0], channels = x.shape[3]
    let (g, end) = try window.geometry(input: [x.shape[1], x.shape[2]], kernel: kernel)
    try checkedElementCount([batch] + g.outputSize + [channels], dtype: x.dtype, "pooling")
    let out = try Tensor(uninitialized: x.dtype, shape: [batch] + g.outputSize + [channels])
    let rows = g.outputSize[0], inImage = g.inputCount * channels, outImage = g.outputCount * channels
    let xp = UnsafePointer(x.storage.pointer.assumingMemoryBound(to: T.self)), yp = out.storage.pointer.assumingMemoryBound(to: T.self)
    let grain = max(1, (1 << 15) / max(1, g.outputSize[1] * channels * g.kernelCount))
    teamRanges(batch * rows, grain: grain) { range in
        var r = range.lowerBound
        while r < range.upperBound {
            let n = r / rows, first = r % rows, last = min(rows, first + range.upperBound - r)
            body(xp + n * inImage, yp + n * outImage, channels, g, end, first..<last)
            r += last - first
        }
    }
    return out
}
