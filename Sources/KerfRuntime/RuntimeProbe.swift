import Synchronization

/// What tests watch and steer inside a session: set through the internal
/// `SessionOptions.probe`, which is nil in every session Kerf's API, CLI and C library create,
/// so their runs neither count nor take a forced path. Each session sees only the probe of its
/// own options. Counts are atomic: a probe may watch runs on several threads at once.
final class RuntimeProbe: Sendable {
    /// When set, every MatMul/Gemm holding sparse weights takes this path (true: the sparse
    /// kernel, false: dense) instead of timing both for each row count.
    let forcedSparseChoice: Bool?
    private let fusedQuantized = Atomic<Int>(0)
    private let sparse = Atomic<Int>(0)

    init(forcedSparseChoice: Bool? = nil) { self.forcedSparseChoice = forcedSparseChoice }

    /// Runs of the fused int8 operators (kerf.DynamicQuantizedMatMul, QuantizedMatMul,
    /// QuantizedConv and the quantized elementwise, table and pooling steps) so far.
    var fusedQuantizedRuns: Int { fusedQuantized.load(ordering: .relaxed) }
    /// Products computed by the sparse kernel so far (its timing runs not counted).
    var sparseProducts: Int { sparse.load(ordering: .relaxed) }

    /// Records one run of a fused int8 operator.
    func countFusedQuantizedRun() { fusedQuantized.add(1, ordering: .relaxed) }

    /// Records one product through the sparse kernel.
    func countSparseProduct() { sparse.add(1, ordering: .relaxed) }
}
