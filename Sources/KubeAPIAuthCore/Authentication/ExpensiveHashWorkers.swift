#if canImport(Glibc)
import Glibc
#endif
import NIOPosix
import RancherAuth
import ServiceLifecycle
import Synchronization

/// Runs expensive verifications (scrypt: tens of milliseconds and 32 MiB each) on a small,
/// dedicated thread pool so they never block an event loop, with a bounded queue.
///
/// When the queue is full the review is answered 503 ("cannot verify now"), which kube-apiserver
/// neither caches nor retries; the caller's next request simply tries again.
///
/// Where a door knows the end client (the proxy), each client host may hold at most
/// `maxPerClient` of the places (running or queued), so one client sending wrong secrets as fast as
/// it can cannot fill the queue: the owner of the token, from another host, still gets a place, and
/// verifications are first in, first out. (The webhook cannot tell its clients apart: every review
/// comes from kube-apiserver, and there the queue itself is the bound.)
///
/// A `Service`: its threads start when the group runs it (or at the first verification, whichever
/// comes first, so a request that arrives before the group has started it still gets hashed) and
/// stop after graceful shutdown, once the verifications in progress have finished. After that a
/// verification is refused like one beyond a full queue.
public final class ExpensiveHashWorkers: Service, Sendable {
    public let threads: Int
    public let maxQueued: Int
    /// Places (running or queued) one client host may hold at once.
    public let maxPerClient: Int
    private let pool: NIOThreadPool
    private let inFlight = Atomic<Int>(0)
    private let perClient = Mutex<[String: Int]>([:])
    private enum State { case idle, running, stopped }
    private let state = Mutex<State>(.idle)

    /// `maxPerClient` defaults to a quarter of all places (at least one).
    public init(threads: Int, maxQueued: Int, maxPerClient: Int? = nil) {
        self.threads = threads
        self.maxQueued = maxQueued
        self.maxPerClient = maxPerClient ?? max(1, (threads + maxQueued) / 4)
        self.pool = NIOThreadPool(numberOfThreads: threads)
    }

    public func run() async throws {
        _ = startIfIdle()
        try? await gracefulShutdown()
        try await shutdown()
    }

    /// Stops the threads once the verifications in progress have finished, as graceful shutdown
    /// does; for an owner outside a ServiceGroup (a test harness). Later verifications are refused.
    public func shutdown() async throws {
        let wasRunning = state.withLock { state in
            defer { state = .stopped }
            return state == .running
        }
        if wasRunning { try await pool.shutdownGracefully() }
    }

    /// Starts the threads once; `false` after the service has stopped.
    private func startIfIdle() -> Bool {
        state.withLock { state in
            switch state {
            case .running: return true
            case .stopped: return false
            case .idle:
                pool.start()
                state = .running
                return true
            }
        }
    }

    /// Runs `pending` on the pool, charged to `client` when the door knows it; `nil` when the
    /// queue is full or that client holds its whole share. The completion carries the decision,
    /// or `nil` when the pool stopped before running it; it completes on a worker thread.
    public func verify(
        _ pending: PendingVerification, metrics: ServiceMetrics? = nil, chargedTo client: String? = nil
    ) -> Completion<Decision?>? {
        guard startIfIdle() else { return nil }
        if let client {
            let admitted = perClient.withLock { counts in
                let held = counts[client, default: 0]
                guard held < maxPerClient else { return false }
                counts[client] = held + 1
                return true
            }
            guard admitted else { return nil }
        }
        let inFlightNow = inFlight.add(1, ordering: .relaxed).newValue
        guard inFlightNow <= maxQueued + threads else {
            inFlight.subtract(1, ordering: .relaxed)
            release(client)
            return nil
        }
        let completion = Completion<Decision?>()
        pool.submit { state in
            var decision: Decision?
            if case .active = state {
                Self.yieldToEventLoops()
                decision = metrics?.timedVerification(pending) ?? pending.run()
            }
            self.inFlight.subtract(1, ordering: .relaxed)
            self.release(client)
            completion.complete(decision)
        }
        return completion
    }

    private func release(_ client: String?) {
        guard let client else { return }
        perClient.withLock { counts in
            let held = counts[client, default: 1] - 1
            counts[client] = held > 0 ? held : nil
        }
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
}
