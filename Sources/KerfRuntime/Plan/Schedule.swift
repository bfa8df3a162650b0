import KerfCore
#if canImport(Glibc)
import Glibc
#endif

/// The steps of a plan in flat buffers, read by a run without reference counting (walking
/// per-step arrays retains and releases each of them per step): per step, ranges into `slots`
/// of its inputs (-1: omitted; `moves` tells which move into the arguments), outputs and
/// releases, its operator, and the lock that lets one run at a time call that operator.
/// Immutable once made, but for the locks.
final class Schedule: @unchecked Sendable {
    struct Entry {
        let inputs: Range<Int>, outputs: Range<Int>, releases: Range<Int>
    }
    let entries: UnsafeMutableBufferPointer<Entry>
    let slots: UnsafeMutableBufferPointer<Int>
    let moves: UnsafeMutableBufferPointer<Bool>
    let ops: UnsafeMutableBufferPointer<any Operator>
    /// Each step's operator lock (`OperatorLock`), held by `owners`.
    private let locks: UnsafeMutableBufferPointer<UnsafeMutablePointer<pthread_mutex_t>>
    private let owners: [OperatorLock]

    /// Per step: its operator, input slots (-1: omitted), output slots (-1: omitted) and the
    /// slots whose last reader it is. An input moves into the arguments where this is the
    /// slot's last read, here and in the plan.
    init(ops: [any Operator], locks: [OperatorLock], inputs: [[Int]], outputs: [[Int]], releases: [[Int]]) {
        var entries: [Entry] = [], slots: [Int] = [], moves: [Bool] = []
        func add(_ list: [Int], _ moved: [Bool]) -> Range<Int> {
            let start = slots.count
            slots += list
            moves += moved
            return start..<slots.count
        }
        for i in ops.indices {
            let released = Set(releases[i]), ins = inputs[i]
            let moved = ins.indices.map { k in released.contains(ins[k]) && !ins[(k + 1)...].contains(ins[k]) }
            entries.append(Entry(inputs: add(ins, moved), outputs: add(outputs[i], outputs[i].map { _ in false }),
                                 releases: add(releases[i], releases[i].map { _ in false })))
        }
        self.entries = planBuffer(entries)
        self.slots = planBuffer(slots)
        self.moves = planBuffer(moves)
        self.ops = planBuffer(ops)
        self.locks = planBuffer(locks.map(\.mutex))
        owners = locks
    }

    /// Calls step `index`'s operator on `args`, holding the step's lock.
    @inline(__always)
    func run(_ index: Int, consuming args: inout [Tensor?]) throws -> [Tensor] {
        pthread_mutex_lock(locks[index])
        defer { pthread_mutex_unlock(locks[index]) }
        return try ops[index].run(consuming: &args)
    }

    deinit {
        ops.deinitialize()
        for b in [UnsafeMutableRawPointer(entries.baseAddress), UnsafeMutableRawPointer(slots.baseAddress),
                  UnsafeMutableRawPointer(locks.baseAddress),
                  UnsafeMutableRawPointer(moves.baseAddress), UnsafeMutableRawPointer(ops.baseAddress)] { b?.deallocate() }
    }
}

/// `values` copied into a buffer the caller deallocates (at its base address; never nil, even
/// when empty): how plans hold per-step data that runs read without reference counting.
func planBuffer<T>(_ values: [T]) -> UnsafeMutableBufferPointer<T> {
    let b = UnsafeMutableBufferPointer<T>.allocate(capacity: max(values.count, 1))
    _ = b.initialize(from: values)
    return UnsafeMutableBufferPointer(rebasing: b[0..<values.count])
}

/// The lock of one operator: operators keep state between calls (weights packed at the first
/// run, oneDNN primitives per input shape), so each is called by one run at a time. Concurrent
/// runs go through a plan one behind the other, each step in use by one of them; plans that
/// share an operator (`Session.extended`) share its lock.
final class OperatorLock: @unchecked Sendable {
    let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
}
