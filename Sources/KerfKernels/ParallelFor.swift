import CDNNL
import KerfCKernels
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs body(worker, index) for every index in 0..<count on up to `threads` threads: the
/// calling thread plus (workers - 1) threads of the shared `WorkerPool` (short-lived pthreads
/// when the pool is busy: a nested or concurrent call), index i going to worker i % workers.
/// oneDNN calls inside `body` use one thread each (the OpenMP setting is per thread).
/// Returns when all indices are done. `body` must be safe to call concurrently for
/// different workers.
public func parallelFor(_ count: Int, threads: Int, _ body: (_ worker: Int, _ index: Int) -> Void) {
    let workers = max(1, min(threads, count))
    if workers == 1 {
        for i in 0..<count { body(0, i) }
        return
    }
    let pooled = WorkerPool.shared.run(workers: workers) { worker in
        let saved = worker == 0 ? omp_get_max_threads() : 1
        if worker == 0 { omp_set_num_threads(1) }
        var i = worker
        while i < count { body(worker, i); i += workers }
        if worker == 0 { omp_set_num_threads(saved) }
    }
    if pooled { return }
    withoutActuallyEscaping(body) { body in
        final class Job {
            let body: (Int, Int) -> Void
            let worker: Int, workers: Int, count: Int
            init(_ body: @escaping (Int, Int) -> Void, worker: Int, workers: Int, count: Int) {
                self.body = body
                self.worker = worker
                self.workers = workers
                self.count = count
            }
            func run() {
                omp_set_num_threads(1)
                var i = worker
                while i < count { body(worker, i); i += workers }
            }
        }
        var threadsStarted: [pthread_t] = []
        var inline: [Job] = []
        for w in 1..<workers {
            let job = Job(body, worker: w, workers: workers, count: count)
            var tid = pthread_t()
            let context = Unmanaged.passRetained(job).toOpaque()
            let status = pthread_create(&tid, nil, { raw in
                let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
                job.run()
                return nil
            }, context)
            if status == 0 {
                threadsStarted.append(tid)
            } else {
                Unmanaged<Job>.fromOpaque(context).release()
                inline.append(job)  // no thread available: do that share here
            }
        }
        let saved = omp_get_max_threads()
        Job(body, worker: 0, workers: workers, count: count).run()
        for job in inline { job.run() }
        omp_set_num_threads(saved)
        for tid in threadsStarted { pthread_join(tid, nil) }
    }
}

/// Runs body(index) for every index in 0..<count on up to `threads` threads, each thread taking
/// the next index as soon as it is done with its last (`parallelForClaimed`).
public func parallelForDynamic(_ count: Int, threads: Int, _ body: (_ index: Int) -> Void) {
    parallelForClaimed(count, threads: threads) { _, index in body(index) }
}

/// Runs body(worker, index) for every index in 0..<count on up to `threads` threads, each
/// thread taking the next index as soon as it is done with its last (inside `withTeamKernels`:
/// the indices dealt round-robin to the OpenMP team's threads): a thread slowed down by
/// other work on the machine takes fewer indices, and a pool thread that has not started by
/// the time the calling thread ran out of indices is not waited for (on a machine whose other
/// cores are busy the calling thread does it all rather than waiting for a time slice).
/// Concurrent calls of `body` have different `worker`s in 0..<threads (0: the calling thread);
/// oneDNN calls inside use one thread each. Returns when all indices are done. `body` must be
/// safe to call concurrently for different workers.
public func parallelForClaimed(_ count: Int, threads: Int, _ body: (_ worker: Int, _ index: Int) -> Void) {
    let workers = max(1, min(threads, count))
    if workers == 1 {
        for i in 0..<count { body(0, i) }
        return
    }
    if kerf_team_kernels() != 0 {
        // On the OpenMP team (`withTeamKernels`): indices dealt round-robin to its threads.
        let team = max(1, min(workers, Int(omp_get_max_threads())))
        teamTasks(team) { worker in
            var i = worker
            while i < count { body(worker, i); i += team }
        }
        return
    }
    let next = Atomic<Int>(0)
    func claim(_ worker: Int) {
        while true {
            let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
            if index >= count { return }
            body(worker, index)
        }
    }
    let pooled = WorkerPool.shared.run(workers: workers, helpersOptional: true) { worker in
        let saved = worker == 0 ? omp_get_max_threads() : 1
        if worker == 0 { omp_set_num_threads(1) }
        claim(worker)
        if worker == 0 { omp_set_num_threads(saved) }
    }
    if pooled { return }
    parallelFor(workers, threads: workers) { worker, _ in claim(worker) }
}

/// Threads parked between `parallelFor` calls: starting a pthread and unmapping its stack cost
/// tens of microseconds, as much as a small int8 convolution. Threads start on first use and
/// live as long as the process. After a job they poll for the next one for `spinNanoseconds`
/// before blocking, and so does the calling thread waiting for them: waking a blocked thread
/// (and its idle core, in a VM) takes tens of microseconds, as long as a whole small operator.
/// One job at a time.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let inUse = Atomic<Bool>(false)
    /// How long an idle thread polls before blocking.
    static let spinNanoseconds = 200_000
    /// `generation` and `running`, readable without the mutex for polling.
    private let publishedGeneration = Atomic<Int>(0)
    private let runningHelpers = Atomic<Int>(0)
    // Guarded by `mutex`:
    private var started = 0
    private var generation = 0
    private var workers = 0
    private var remaining = 0
    /// Helpers inside the current job's body.
    private var running = 0
    /// Set when the calling thread finished a job whose helpers are optional: helpers that
    /// have not joined by then skip it.
    private var closed = false
    private var job: ((Int) -> Void)?

    private init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(done, nil)
    }

    /// Runs body(worker) for worker in 0..<workers, 0 on the calling thread, and returns true
    /// when all are done; returns false at once (nothing run) when the pool is taken or a
    /// thread cannot be started. With `helpersOptional`, body(0) must leave no work undone
    /// (the helpers only share it): helpers that have not started when it returns never run,
    /// and only those running are waited for.
    func run(workers: Int, helpersOptional: Bool = false, _ body: (Int) -> Void) -> Bool {
        guard inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { inUse.store(false, ordering: .releasing) }
        pthread_mutex_lock(mutex)
        while started < workers - 1 {
            var tid = pthread_t()
            let context = Unmanaged.passRetained(Start(pool: self, index: started + 1, seen: generation)).toOpaque()
            guard pthread_create(&tid, nil, { raw in
                let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
                start.pool.serve(start.index, seen: start.seen)
                return nil
            }, context) == 0 else {
                Unmanaged<Start>.fromOpaque(context).release()
                pthread_mutex_unlock(mutex)
                return false
            }
            pthread_detach(tid)
            started += 1
        }
        return withoutActuallyEscaping(body) { body in
            job = body
            self.workers = workers
            remaining = workers - 1
            remainingMirror.store(remaining, ordering: .relaxed)
            running = 0
            closed = false
            generation += 1
            publishedGeneration.store(generation, ordering: .releasing)
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)
            body(0)
            pthread_mutex_lock(mutex)
            if helpersOptional {
                closed = true
                if running > 0 {
                    pthread_mutex_unlock(mutex)
                    Self.poll { runningHelpers.load(ordering: .acquiring) == 0 }
                    pthread_mutex_lock(mutex)
                }
                while running > 0 { pthread_cond_wait(done, mutex) }
            } else {
                if remaining > 0 {
                    pthread_mutex_unlock(mutex)
                    Self.poll { runningHelpers.load(ordering: .acquiring) == 0 && publishedRemaining() == 0 }
                    pthread_mutex_lock(mutex)
                }
                while remaining > 0 { pthread_cond_wait(done, mutex) }
            }
            job = nil
            pthread_mutex_unlock(mutex)
            return true
        }
    }

    private final class Start {
        let pool: WorkerPool, index: Int
        /// The generation when the thread was started: the next job is its first.
        let seen: Int
        init(pool: WorkerPool, index: Int, seen: Int) { (self.pool, self.index, self.seen) = (pool, index, seen) }
    }

    /// A pool thread's life: wait for a new job, take part when its index is within the job's workers.
    private func serve(_ index: Int, seen first: Int) {
        omp_set_num_threads(1)
        pthread_mutex_lock(mutex)
        var seen = first
        while true {
            if generation == seen {
                pthread_mutex_unlock(mutex)
                Self.poll { publishedGeneration.load(ordering: .acquiring) != seen }
                pthread_mutex_lock(mutex)
            }
            while generation == seen { pthread_cond_wait(wake, mutex) }
            seen = generation
            guard index < workers, let body = job, !closed else { continue }
            running += 1
            runningHelpers.add(1, ordering: .relaxed)
            pthread_mutex_unlock(mutex)
            body(index)
            pthread_mutex_lock(mutex)
            running -= 1
            remaining -= 1
            remainingMirror.store(remaining, ordering: .relaxed)
            runningHelpers.subtract(1, ordering: .releasing)
            if remaining == 0 || (closed && running == 0) { pthread_cond_signal(done) }
        }
    }

    private let remainingMirror = Atomic<Int>(0)
    private func publishedRemaining() -> Int { remainingMirror.load(ordering: .acquiring) }

    /// Polls `ready` (with a pause between reads) until it holds or `spinNanoseconds` passed.
    private static func poll(_ ready: () -> Bool) {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var polls = 0
        while !ready() {
            kerf_cpu_pause()
            polls += 1
            if polls % 64 == 0 {
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                if (now.tv_sec - start.tv_sec) * 1_000_000_000 + (now.tv_nsec - start.tv_nsec) > spinNanoseconds { return }
            }
        }
    }
}

/// Splits 0..<count into contiguous ranges of at least `grain` indices (up to four per thread)
/// and runs body(range) for each on up to `threads` threads, taken as in `parallelForClaimed`;
/// on the calling thread alone when there is not enough work for two ranges. Inside
/// `withTeamKernels`, the ranges are `teamRanges`' instead. `body` must be
/// safe to call concurrently for disjoint ranges.
public func parallelRanges(_ count: Int, threads: Int, grain: Int, _ body: (Range<Int>) -> Void) {
    let threads = max(1, threads)
    let tasks = min(4 * threads, count / max(1, grain))
    if threads == 1 || tasks <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    if kerf_team_kernels() != 0 {
        teamRanges(count, grain: grain, body)
        return
    }
    parallelForClaimed(tasks, threads: threads) { _, t in body(count * t / tasks ..< count * (t + 1) / tasks) }
}

/// `parallelRanges` on the calling thread's OpenMP team (up to omp_get_max_threads() threads,
/// one contiguous range each): for work between oneDNN primitives, whose team would otherwise
/// spin while a second pool runs it. Ranges hold at least `grain` indices; one range runs on
/// the calling thread alone. `body` must be safe to call concurrently for disjoint ranges.
public func teamRanges(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
    let tasks = min(Int(omp_get_max_threads()), count / max(1, grain))
    if tasks <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    teamTasks(tasks) { t in body(count * t / tasks ..< count * (t + 1) / tasks) }
}

/// Runs body(task) for every task in 0..<tasks on the calling thread's OpenMP team (task t on
/// team thread t mod team size; see `kerf_team_run`). `body` must be safe to call concurrently
/// for different tasks.
public func teamTasks(_ tasks: Int, _ body: (Int) -> Void) {
    withoutActuallyEscaping(body) { body in
        var job = body
        withUnsafeMutablePointer(to: &job) { pointer in
            kerf_team_run(tasks, { context, t in
                context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(t))
            }, pointer)
        }
    }
}

/// Runs `body` with `parallelRanges` on the calling thread splitting work over its OpenMP team
/// (`teamRanges`) rather than the worker pool: for runs that alternate oneDNN primitives and
/// Kerf kernels op by op (a training step), where the team would spin on one core while the pool
/// waits for it. Per thread; nests.
public func withTeamKernels<R>(_ body: () throws -> R) rethrows -> R {
    let previous = kerf_set_team_kernels(1)
    defer { _ = kerf_set_team_kernels(previous) }
    return try body()
}
