/// Where the rows of a [rows, n] product go when the graph reshapes it to [B, S, H, D] (rows =
/// B·S, n = H·D) and transposes it to an attention's head-major layout: [B, H, S, D] (perm
/// 0, 2, 1, 3: queries and values) or [B, H, D, S] (perm 0, 2, 3, 1: keys, transposed). Writing
/// each block of rows there directly saves the separate Transpose's pass over the tensor.
public struct HeadLayout: Sendable {
    public let sequence: Int, heads: Int, headSize: Int
    /// True for [B, H, D, S].
    public let keysTransposed: Bool

    public init(sequence: Int, heads: Int, headSize: Int, keysTransposed: Bool) {
        (self.sequence, self.heads, self.headSize, self.keysTransposed) = (sequence, heads, headSize, keysTransposed)
    }

    /// Copies rows first ..< first + count of the product (block, row stride n = heads · headSize)
    /// to their places in `out`, the whole [B, H, S, D] or [B, H, D, S] tensor.
    public func place(_ block: UnsafePointer<Float>, first: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        let n = heads * headSize, s = sequence, d = headSize
        var r = 0
        while r < count {
            // A run of rows within one batch item: consecutive positions.
            let row = first + r, b = row / s, position = row % s, run = min(count - r, s - position)
            for h in 0..<heads {
                let source = block + r * n + h * d, plane = out + (b * heads + h) * s * d
                if !keysTransposed {
                    let target = plane + position * d
                    for i in 0..<run { (target + i * d).update(from: source + i * n, count: d) }
                } else {  // source [run, d] -> plane [d, s] at column `position`
                    transpose(source, rows: run, columns: d, lds: n, adding: nil, plane + position, ldd: s)
                }
            }
            r += run
        }
    }

    /// The output shape for batch items of `sequence` positions.
    public func shape(batch: Int) -> [Int] {
        keysTransposed ? [batch, heads, headSize, sequence] : [batch, heads, sequence, headSize]
    }
}
