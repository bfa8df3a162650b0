import KerfCore

// Which channels of a group go: the lowest-scoring ones, scores summed over the group's
// producers so that tied spaces lose the same channels.

/// Per-channel sums of |w| (or of w^2 with `squared`) of a float32 tensor along `axis`, channel
/// c being the entries [c*block, (c+1)*block) there.
func channelNorms(_ t: Tensor, axis: Int, block: Int = 1, squared: Bool) -> [Float] {
    let channels = t.shape[axis] / block
    let outer = t.shape[..<axis].reduce(1, *), inner = block * t.shape[(axis + 1)...].reduce(1, *)
    var sums = [Float](repeating: 0, count: channels)
    t.withElements(as: Float.self) { w in
        for o in 0..<outer {
            for c in 0..<channels {
                let base = (o * channels + c) * inner
                var s: Float = 0
                for k in 0..<inner { let x = w[base + k]; s += squared ? x * x : abs(x) }
                sums[c] += s
            }
        }
    }
    return sums
}

/// The importance of each channel of `group` (higher is kept first):
/// - l1: sum over the producers of the L1 norm of each unit's weights (for attention heads:
///   the head's Q, K, V columns and output-projection rows);
/// - l2: the L2 norm of each unit's weights across all producers;
/// - bn_gamma: sum of |gamma| of the BatchNormalization after each producer, when every
///   producer has one; L1 otherwise (the scales of the two are not comparable).
func channelScores(of group: [Int], in found: ChannelGroups, criterion: ChannelCriterion) throws -> [Float] {
    let constants = found.constants
    let spaces = group.map { found.spaces[$0] }
    var scores = [Float](repeating: 0, count: spaces[0].channels)
    func add(_ values: [Float], _ what: String) throws {
        guard values.allSatisfy(\.isFinite) else {
            throw KerfError.invalidModel("'\(what)' contains NaN or infinity; its channels cannot be ranked")
        }
        for c in scores.indices { scores[c] += values[c] }
    }
    let gammas = spaces.compactMap { s in s.gamma.flatMap { constants[$0] }.flatMap { $0.dtype == .float && $0.count == s.channels ? $0 : nil } }
    if criterion == .batchNormGamma && gammas.count == spaces.count {
        for (g, s) in zip(gammas, spaces) { try add(g.array(of: Float.self).map(abs), s.gamma!) }
        return scores
    }
    for s in spaces {
        for w in s.scored {
            // A fused Q/K/V weight holds the heads' units once per segment: their norms add up.
            let norms = channelNorms(constants[w.name]!, axis: w.axis, block: w.block, squared: criterion == .l2)
            try add(scores.indices.map { c in stride(from: c, to: norms.count, by: scores.count).reduce(0) { $0 + norms[$1] } }, w.name)
        }
    }
    return criterion == .l2 ? scores.map { $0.squareRoot() } : scores
}

/// The channels to keep, ascending, after removing the `remove` lowest-scoring ones (ties
/// broken by position: the earlier channel goes first).
func channelsToKeep(scores: [Float], remove: Int) -> [Int] {
    let order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] < scores[$1] : $0 < $1 }
    return order.dropFirst(remove).sorted()
}

/// How many of `channels` to remove at `sparsity`: rounded to nearest, at least one kept; when
/// there are more than `multiple` and some go, as many as leave the nearest multiple of
/// `multiple` (at least one multiple; see `PruneOptions.channelMultiple`).
func channelsToRemove(_ channels: Int, sparsity: Double, multiple: Int = 1) -> Int {
    let remove = min(Int((sparsity * Double(channels)).rounded()), channels - 1)
    guard multiple > 1, channels > multiple, remove > 0 else { return remove }
    let keep = Int((Double(channels - remove) / Double(multiple)).rounded()) * multiple
    return channels - max(multiple, min(keep, channels))
}
