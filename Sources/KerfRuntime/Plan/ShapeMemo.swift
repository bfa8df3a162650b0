import KerfCore

/// The steps of a plan whose outputs follow from tensor shapes and constants alone: `Shape`
/// and `Size` steps (the roots) and the pure steps that compute only from roots, constants and
/// each other (exporters' `Shape -> Gather -> Unsqueeze -> Concat -> Reshape` target chains).
/// A run compares each root's output with the same run state's previous one; a memoized step
/// none of whose roots changed is skipped, and its previous outputs (kept in the run state)
/// fill its slots. Immutable once made.
final class ShapeMemo: @unchecked Sendable {
    /// Per step: `notMemoized`, `derived`, or (0...) the step's root index.
    let kinds: UnsafeMutableBufferPointer<Int>
    /// Per step: the range of `roots` holding the root indices its outputs depend on.
    let dependencies: UnsafeMutableBufferPointer<Range<Int>>
    let roots: UnsafeMutableBufferPointer<Int>
    let rootCount: Int

    static let notMemoized = -2, derived = -1
    /// Outputs larger than this (bytes, all outputs of a step together) are recomputed each run.
    static let maxCachedBytes = 1 << 16

    /// Deterministic operators that compute small index and shape tensors in exported graphs.
    static let pureOperators: Set<String> = [
        "Abs", "Add", "And", "Cast", "Ceil", "Concat", "Constant", "ConstantOfShape", "Div", "Equal", "Expand", "Flatten", "Floor",
        "Gather", "Greater", "GreaterOrEqual", "Identity", "Less", "LessOrEqual", "Max", "Min", "Mod", "Mul", "Neg", "Not",
        "Or", "Range", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSum", "Reshape", "Slice", "Split", "Sqrt", "Squeeze",
        "Sub", "Tile", "Transpose", "Unsqueeze", "Where",
    ]

    /// `inputs` and `outputs` are the steps' slots (-1: omitted), `constants` the slots no feed
    /// can replace; `graphOutputs` are never memoized (callers may write into what they get).
    init(nodes: [Node], inputs: [[Int]], outputs: [[Int]], constants: Set<Int>, graphOutputs: Set<Int>) {
        var kinds = [Int](repeating: ShapeMemo.notMemoized, count: nodes.count)
        var dependencies: [Range<Int>] = [], roots: [Int] = []
        var rootsOfSlot: [Int: [Int]] = [:]
        var rootCount = 0
        for (i, node) in nodes.enumerated() {
            var depends: [Int] = []
            let isRoot = node.isDefaultDomain && (node.opType == "Shape" || node.opType == "Size")
            if isRoot && !outputs[i].contains(where: graphOutputs.contains) {
                kinds[i] = rootCount
                depends = [rootCount]
                rootCount += 1
            } else if node.isDefaultDomain, ShapeMemo.pureOperators.contains(node.opType),
                      inputs[i].allSatisfy({ $0 < 0 || constants.contains($0) || rootsOfSlot[$0] != nil }),
                      !outputs[i].contains(where: graphOutputs.contains) {
                kinds[i] = ShapeMemo.derived
                depends = Array(Set(inputs[i].flatMap { rootsOfSlot[$0] ?? [] })).sorted()
            }
            if kinds[i] != ShapeMemo.notMemoized {
                for s in outputs[i] where s >= 0 { rootsOfSlot[s] = depends }
            }
            dependencies.append(roots.count..<(roots.count + depends.count))
            roots += depends
        }
        self.kinds = planBuffer(kinds)
        self.dependencies = planBuffer(dependencies)
        self.roots = planBuffer(roots)
        self.rootCount = rootCount
    }

    /// Whether `results` are small enough to keep for later runs.
    private static func fitsCache(_ results: [Tensor]) -> Bool {
        var bytes = 0
        for t in results {
            guard t.dtype != .string else { return false }
            bytes += t.byteCount
        }
        return bytes <= maxCachedBytes
    }

    /// Same dtype, shape and bytes (roots hold int64 shapes and counts).
    private static func sameValue(_ a: Tensor, _ b: Tensor) -> Bool {
        a.dtype == b.dtype && a.shape == b.shape && a.dtype != .string && a.bytes.elementsEqual(b.bytes)
    }

    /// What one run state remembers of its runs before: a run moves it out of its state, asks
    /// `reusable` before each step and tells `record` what each step computed.
    struct Recall {
        /// Per step: its outputs in the last run here (nil: not memoized, not run, too large,
        /// or asked for by that run).
        private var outputs: [[Tensor]?] = []
        /// Per root: its output in the last run here.
        private var rootValues: [Tensor?] = []
        /// Per root: whether its output in the run in progress differs from `rootValues`'.
        private var rootChanged: [Bool] = []

        init() {}

        init(_ memo: ShapeMemo, steps: Int) {
            outputs = [[Tensor]?](repeating: nil, count: steps)
            rootValues = [Tensor?](repeating: nil, count: memo.rootCount)
            rootChanged = [Bool](repeating: true, count: memo.rootCount)
        }

        /// The outputs of derived step `index` in the last run here, when none of the roots it
        /// depends on changed in this run (they all ran before it).
        @inline(__always)
        func reusable(_ index: Int, _ memo: ShapeMemo) -> [Tensor]? {
            guard memo.kinds[index] == ShapeMemo.derived, let cached = outputs[index] else { return nil }
            for k in memo.dependencies[index] where rootChanged[memo.roots[k]] { return nil }
            return cached
        }

        /// Notes what memoized step `index` computed in this run; `keep` is false when the run
        /// returns one of its outputs (never handed out again from here).
        mutating func record(_ index: Int, _ memo: ShapeMemo, _ results: [Tensor], keep: Bool) {
            let kind = memo.kinds[index]
            if kind >= 0 {
                let same = keep && results.count == 1 && rootValues[kind].map { ShapeMemo.sameValue($0, results[0]) } == true
                rootChanged[kind] = !same
                if !same { rootValues[kind] = keep ? results.first : nil }
            } else if kind == ShapeMemo.derived {
                outputs[index] = keep && ShapeMemo.fitsCache(results) ? results : nil
            }
        }

        /// After a failed run, which may have updated roots without their dependents.
        mutating func forget() {
            for i in outputs.indices { outputs[i] = nil }
            for r in rootValues.indices { rootValues[r] = nil }
        }
    }

    deinit {
        for b in [UnsafeMutableRawPointer(kinds.baseAddress), UnsafeMutableRawPointer(dependencies.baseAddress),
                  UnsafeMutableRawPointer(roots.baseAddress)] { b?.deallocate() }
    }
}
