import KerfCore

/// Structured pruning (being written).
func pruneChannels(_ model: Model, options: PruneOptions, report: inout PruneReport) throws {
    throw KerfError.unsupported("channel pruning is not available yet")
}
