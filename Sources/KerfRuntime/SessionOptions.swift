import KerfCore
/// How a session runs. Mirrors `kerf_session_options` of the C API.
public struct SessionOptions: Sendable {
    /// Intra-op threads; 0 means one per core.
    public var threads: Int = 0
    /// 0 = run the graph as written; 1 = apply graph optimizations.
    public var optimizationLevel: Int = 1
    /// true: MatMul and Gemm whose constant float weights are mostly zeros keep a sparse copy
    /// and use the sparse kernel for the row counts where it measured faster than dense.
    /// false: always dense (for benchmarks and comparisons).
    public var sparseKernels: Bool = true
    /// Bytes of tensor memory the session may hold: what it allocates while being created or
    /// running and that is still alive (activations, prepared weights, outputs not yet freed).
    /// An allocation past it fails with `.outOfMemory`. 0: no limit but the process-wide one
    /// (`MemoryLimit.processBytes`), which always applies too.
    public var memoryLimit: Int = 0
    /// Values graph optimizations must not fuse away, so that a run can return them
    /// (`Session.run(outputNames:)`) though they are no graph outputs. Any value the plan
    /// computes can be returned; this only matters for those fusion would remove.
    public var keptValues: [String] = []
    /// true: kernels split their work over the OpenMP team oneDNN's primitives run on
    /// (`withTeamKernels`) instead of Kerf's worker pool: for graphs in which nearly every other
    /// op is a oneDNN primitive, as a training step's are.
    public var teamKernels: Bool = false
    /// Tests only: counters and switches the session's operators report to (see `RuntimeProbe`).
    var probe: RuntimeProbe?

    /// The budget a session charges its allocations to (nil when `memoryLimit` is 0).
    func makeBudget() -> MemoryBudget? { memoryLimit > 0 ? MemoryBudget(limit: memoryLimit) : nil }

    /// `threads`, with 0 resolved to the number of online cores.
    public var resolvedThreads: Int { threads > 0 ? threads : ProcessInfoCores.count }

    public init(threads: Int = 0, optimizationLevel: Int = 1, sparseKernels: Bool = true, memoryLimit: Int = 0,
                keptValues: [String] = []) {
        self.memoryLimit = memoryLimit
        self.keptValues = keptValues
        self.threads = threads
        self.optimizationLevel = optimizationLevel
        self.sparseKernels = sparseKernels
    }
}
