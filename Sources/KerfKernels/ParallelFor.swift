import CDNNL
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Runs body(worker, index) for every index in 0..<count on up to `threads` threads: the
/// calling thread plus (workers - 1) short-lived pthreads, index i going to worker i % workers.
/// oneDNN calls inside `body` use one thread each (the OpenMP setting is per thread).
/// Returns when all indices are done. `body` must be safe to call concurrently for
/// different workers.
public func parallelFor(_ count: Int, threads: Int, _ body: (_ worker: Int, _ index: Int) -> Void) {
    let workers = max(1, min(threads, count))
    if workers == 1 {
        for i in 0..<count { body(0, i) }
        return
    }
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
/// the next index as soon as it is done with its last: a thread slowed down by other work on
/// the machine takes fewer indices, so no thread waits long for a straggler. Returns when all
/// indices are done. `body` must be safe to call concurrently.
public func parallelForDynamic(_ count: Int, threads: Int, _ body: (_ index: Int) -> Void) {
    let workers = max(1, min(threads, count))
    if workers == 1 {
        for i in 0..<count { body(i) }
        return
    }
    let next = Atomic<Int>(0)
    parallelFor(workers, threads: workers) { _, _ in
        while true {
            let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
            if index >= count { return }
            body(index)
        }
    }
}
