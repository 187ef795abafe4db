import Logging
import RancherAuth
import ServiceLifecycle
import Synchronization

/// Takes the ``RecordCensus`` of every published snapshot, off the publishing thread and at most
/// once per `minimumInterval` (100,000 tokens take tens of milliseconds, and `lastUsedAt` writes
/// republish often), and tells it three ways: the `kube_api_auth_records_unusable{kind,reason}`
/// gauges, lines in `/readyz?verbose`, and one log line per record with a problem, logged once
/// while the problem lasts (not on every event). `kube-api-auth diagnose` tells the same census
/// from the API.
public final class RecordCensusService: Service {
    let store: RecordStore
    let clock: any WallClock
    let unreadable: @Sendable () -> [RecordFinding]
    let metrics: ServiceMetrics?
    let logger: Logger
    let minimumInterval: Duration
    /// Problem lines per census at most; the rest are counted in one line.
    static let maxLinesPerCensus = 50

    private struct State {
        var latest: RecordCensus?
        /// The problems already logged (a problem that goes away and comes back is logged again).
        var logged: Set<RecordFinding> = []
    }

    private let state = Mutex(State())
    private let wake: AsyncStream<Void>.Continuation
    private let wakeups: AsyncStream<Void>

    public init(
        store: RecordStore, clock: any WallClock, unreadable: @escaping @Sendable () -> [RecordFinding] = { [] },
        metrics: ServiceMetrics?, logger: Logger, minimumInterval: Duration = .seconds(1)
    ) {
        self.store = store
        self.clock = clock
        self.unreadable = unreadable
        self.metrics = metrics
        self.logger = logger
        self.minimumInterval = minimumInterval
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let wake = self.wake
        store.onPublish { _ in wake.yield() }
        // A directory source publishes before the group runs.
        if store.snapshot != nil { wake.yield() }
        store.setCensusProvider { [weak self] in self?.readinessLines() ?? [] }
        metrics?.onScrape { [weak self] metrics in
            if let census = self?.latest { metrics.setCensus(census) }
        }
    }

    public var latest: RecordCensus? { state.withLock { $0.latest } }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in self.wakeups {
                self.takeCensus()
                // Cancellation (shutdown) ends the wait and the loop.
                guard (try? await Task.sleep(for: self.minimumInterval)) != nil else { return }
            }
        }
    }

    /// Takes the census of the current snapshot, logs new problems, and keeps it for the gauges.
    func takeCensus() {
        guard let snapshot = store.snapshot else { return }
        let census = RecordCensus.take(snapshot, unreadable: unreadable(), now: clock.now())
        let problems = Set(census.problems)
        let fresh = state.withLock { state in
            state.latest = census
            let fresh = problems.subtracting(state.logged)
            state.logged = problems
            return fresh.sorted()
        }
        metrics?.setCensus(census)
        for finding in fresh.prefix(Self.maxLinesPerCensus) {
            var metadata: Logger.Metadata = [
                "kind": "\(finding.kind.rawValue)", "name": "\(ObjectName.forLog(finding.name))", "reason": "\(finding.reason.rawValue)",
            ]
            if let detail = finding.detail { metadata["detail"] = "\(detail)" }
            logger.warning("record cannot authenticate", metadata: metadata)
        }
        if fresh.count > Self.maxLinesPerCensus {
            logger.warning(
                "more records cannot authenticate; kube-api-auth diagnose lists them all",
                metadata: ["more": "\(fresh.count - Self.maxLinesPerCensus)"])
        }
    }

    /// The census in a few lines, for `/readyz?verbose`.
    func readinessLines() -> [String] {
        guard let census = latest else { return [] }
        return Self.summary(census)
    }

    /// The census in a few lines (shared with `diagnose`).
    public static func summary(_ census: RecordCensus) -> [String] {
        var lines = [
            "records census: \(census.usableTokens) of \(census.tokens) token(s) usable, \(census.users) user(s), \(census.hashSecrets) hash Secret(s)"
        ]
        let counts = census.countsByReason
        for severity in [RecordFinding.Severity.problem, .state, .unused] {
            var parts: [String] = []
            for kind in RecordFinding.Kind.allCases {
                for reason in kind.reasons where reason.severity == severity {
                    if let count = counts[kind]?[reason], count > 0 { parts.append("\(kind.rawValue) \(reason.rawValue): \(count)") }
                }
            }
            guard !parts.isEmpty else { continue }
            let heading =
                switch severity {
                case .problem: "records that cannot authenticate"
                case .state: "tokens refused by their state"
                case .unused: "records nothing refers to"
                }
            lines.append("\(heading): " + parts.joined(separator: ", "))
        }
        return lines
    }
}
