#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import RancherAuth
import Synchronization

/// Runs expensive verifications (scrypt: tens of milliseconds and 32 MiB each) on a small,
/// dedicated thread pool so they never block an event loop, with a bounded queue.
///
/// When the queue is full the review is answered 503 ("cannot verify now"), which kube-apiserver
/// neither caches nor retries; the caller's next request simply tries again.
public final class ExpensiveHashWorkers: Sendable {
    public let threads: Int
    public let maxQueued: Int
    private let pool: NIOThreadPool
    private let inFlight = Atomic<Int>(0)

    public init(threads: Int, maxQueued: Int) {
        self.threads = threads
        self.maxQueued = maxQueued
        self.pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    /// Runs `pending` on the pool; `nil` when the queue is full.
    public func verify(
        _ pending: PendingVerification, on eventLoop: any EventLoop, metrics: ServiceMetrics? = nil
    ) -> EventLoopFuture<Decision>? {
        let inFlightNow = inFlight.add(1, ordering: .relaxed).newValue
        guard inFlightNow <= maxQueued + threads else {
            inFlight.subtract(1, ordering: .relaxed)
            return nil
        }
        let future = pool.runIfActive(eventLoop: eventLoop) {
            Self.yieldToEventLoops()
            return metrics?.timedVerification(pending) ?? pending.run()
        }
        future.whenComplete { _ in self.inFlight.subtract(1, ordering: .relaxed) }
        return future
    }

    public var queued: Int { inFlight.load(ordering: .relaxed) }

    /// Lowers the calling pool thread's scheduling priority (nice 10; on Linux, nice is per
    /// thread). When the CPU is contended (a flood of wrong secrets for a scrypt token), the
    /// event loops answering cheap reviews then run first and scrypt gets what is left. One
    /// syscall per verification of ~50 ms; raising nice needs no privilege, so it cannot fail
    /// for lack of one, and a failure would only leave the default priority.
    private static func yieldToEventLoops() {
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)  // 0: the calling thread on Linux
        #endif
    }

    public func shutdown() async throws {
        try await pool.shutdownGracefully()
    }
}
