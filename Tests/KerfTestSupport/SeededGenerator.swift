/// Deterministic pseudo-random test data: the same seed gives the same values on every machine
/// and in every run, so a failing case can be rerun exactly.
///
/// Knuth's 64-bit linear congruential generator (MMIX constants). `next()` returns the state
/// with its high half folded into the low half, since the low bits of an LCG's state repeat
/// with short periods (bit i with period 2^(i+1)); the typed helpers draw on the top bits only.
/// Not for anything but tests: it is neither cryptographic nor of simulation quality.
///
/// A class, so that `SeededGenerator(seed: 3).floats(8)` works without a `var`.
public final class SeededGenerator: RandomNumberGenerator {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// Advances the state and returns it, its high 32 bits folded into the low 32.
    public func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state ^ (state >> 32)
    }

    /// `count` values spread uniformly over `range` at 24-bit resolution (the top 24 bits of
    /// each draw), all of them inside `range`.
    public func floats(_ count: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<count).map { _ in float(in: range) }
    }

    /// One value as `floats` draws it.
    public func float(in range: ClosedRange<Float> = -1...1) -> Float {
        let unit = Float(next() >> 40) / Float(1 << 24)  // in [0, 1), exact
        return min(range.lowerBound + (range.upperBound - range.lowerBound) * unit, range.upperBound)
    }

    /// `count` bytes, each the top 8 bits of one draw.
    public func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next() >> 56) }
    }

    /// A value in [0, 1) at 53-bit resolution, for drawing events of a given probability.
    public func unit() -> Double {
        Double(next() >> 11) / Double(UInt64(1) << 53)
    }
}
