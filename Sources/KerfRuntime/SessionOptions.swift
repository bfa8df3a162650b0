/// How a session runs. Mirrors `kerf_session_options` of the C API.
public struct SessionOptions: Sendable {
    /// Intra-op threads; 0 means one per core.
    public var threads: Int = 0
    /// 0 = run the graph as written; 1 = apply graph optimizations.
    public var optimizationLevel: Int = 1

    public init(threads: Int = 0, optimizationLevel: Int = 1) {
        self.threads = threads
        self.optimizationLevel = optimizationLevel
    }
}
