import KerfCore
import KerfKernels

// Expand (broadcast to a shape) and Tile (repeat along each axis).

/// `x` broadcast to `shape` with ONNX bidirectional broadcasting, materialized.
func expand(_ x: Tensor, to shape: [Int]) throws -> Tensor {
    guard shape.allSatisfy({ $0 >= 0 }) else { throw KerfError.invalidArgument("Expand shape \(shape) has a negative dim") }
    guard let outShape = broadcastShape(x.shape, shape) else {
        throw KerfError.shapeMismatch("Expand: input shape \(x.shape) does not broadcast to \(shape)")
    }
    try checkedElementCount(outShape, dtype: x.dtype, "Expand")
    if x.dtype == .string { return try movingStrings(x) { try expand($0, to: shape) } }
    if outShape == x.shape { return x }
    let out = try Tensor(uninitialized: x.dtype, shape: outShape)
    broadcastCopy(UnsafeRawPointer(x.storage.pointer), x.shape, elementSize: x.dtype.byteSize, out.storage.pointer, outShape)
    return out
}

/// `x` repeated `repeats[d]` times along each axis d.
func tile(_ x: Tensor, repeats: [Int]) throws -> Tensor {
    guard repeats.count == x.rank else {
        throw KerfError.invalidArgument("Tile repeats has \(repeats.count) entries for a rank-\(x.rank) input")
    }
    guard repeats.allSatisfy({ $0 >= 0 }) else { throw KerfError.invalidArgument("Tile repeats \(repeats) has a negative entry") }
    var outShape: [Int] = []
    for (d, r) in zip(x.shape, repeats) {
        let (p, overflow) = d.multipliedReportingOverflow(by: r)
        guard !overflow else { throw KerfError.outOfMemory("Tile output is too large") }
        outShape.append(p)
    }
    try checkedElementCount(outShape, dtype: x.dtype, "Tile")
    if x.dtype == .string { return try movingStrings(x) { try tile($0, repeats: repeats) } }
    // out[k, j] over the interleaved shape [r0, d0, r1, d1, ...] is in[j]: a broadcast of
    // [1, d0, 1, d1, ...].
    let interleavedIn = x.shape.flatMap { [1, $0] }
    let interleavedOut = zip(repeats, x.shape).flatMap { [$0, $1] }
    let out = try Tensor(uninitialized: x.dtype, shape: outShape)
    broadcastCopy(UnsafeRawPointer(x.storage.pointer), interleavedIn, elementSize: x.dtype.byteSize,
                  out.storage.pointer, interleavedOut)
    return out
}

enum ExpandTileOps {
    static func register(_ r: inout [String: OperatorFactory]) {
        r["Expand"] = { _ in
            ClosureOperator { inputs in
                [try expand(try inputs.required(0), to: try intValues(try inputs.required(1, "shape"), "Expand shape"))]
            }
        }
        r["Tile"] = { c in
            let opset = c.opset
            return ClosureOperator { inputs in
                let x = try inputs.required(0)
                if opset < 6 {
                    // Tile-1: inputs (input, tiles, axis), both scalars.
                    let tiles = try intValues(try inputs.required(1, "tiles"), "Tile tiles")
                    let axisValues = try intValues(try inputs.required(2, "axis"), "Tile axis")
                    guard tiles.count == 1, axisValues.count == 1 else {
                        throw KerfError.invalidArgument("Tile-1 tiles and axis must be scalars")
                    }
                    let axis = try normalizeAxis(axisValues[0], rank: x.rank)
                    var repeats = [Int](repeating: 1, count: x.rank)
                    repeats[axis] = tiles[0]
                    return [try tile(x, repeats: repeats)]
                }
                return [try tile(x, repeats: try intValues(try inputs.required(1, "repeats"), "Tile repeats"))]
            }
        }
    }
}
