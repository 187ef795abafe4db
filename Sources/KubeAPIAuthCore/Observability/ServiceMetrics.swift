import CoreMetrics
import Prometheus
import RancherAuth
import Synchronization

/// The service's Prometheus metrics, with a closed set of labels. Instruments are created once
/// (one per label combination), so recording on the review path is an atomic add, not a lookup.
public final class ServiceMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    public enum ReviewResult: String, Sendable, CaseIterable {
        case authenticated, refused, malformed, unavailable
    }

    public enum WriteKind: String, Sendable, CaseIterable {
        case lastUsedAt = "last_used_at"
        case needsRefresh = "needs_refresh"
        case hashMigration = "hash_migration"
    }

    public enum WriteOutcome: String, Sendable, CaseIterable {
        case ok, conflict, notFound = "not_found", error
    }

    private let reviews: [String: CoreMetrics.Counter]
    /// The two counters nearly every review ends in, without building a key.
    private let authenticatedReviews: CoreMetrics.Counter
    private let refusedReviews: [RefusalReason: CoreMetrics.Counter]
    private let reviewDuration: CoreMetrics.Timer
    private let verifyDuration: [HashAlgorithm: CoreMetrics.Timer]
    private let cacheHits: CoreMetrics.Counter
    private let cacheMisses: CoreMetrics.Counter
    private let cacheEvictions: CoreMetrics.Counter
    private let inFlight: CoreMetrics.Meter
    private let records: [RecordKind: CoreMetrics.Meter]
    private let lastSync: [RecordKind: CoreMetrics.Meter]
    private let watchRestarts: [RecordKind: CoreMetrics.Counter]
    private let relists: [RecordKind: CoreMetrics.Counter]
    private let writes: [String: CoreMetrics.Counter]
    private let scryptQueueDepth: CoreMetrics.Meter
    private let guessedTokens: CoreMetrics.Meter
    private let verifiedCacheEntries: CoreMetrics.Meter
    private let snapshotAge: CoreMetrics.Meter
    /// Records that cannot authenticate, or that nothing refers to, per kind and reason (the census).
    private let recordsUnusable: [RecordFinding.Kind: [RecordFinding.Reason: CoreMetrics.Meter]]
    private let snapshotWriteFailures: CoreMetrics.Counter
    private let logLinesDropped: CoreMetrics.Counter
    /// Emergency-token reviews by outcome: `authenticated` or the refusal reason.
    private let emergencyReviews: [String: CoreMetrics.Counter]
    /// Proxied requests by route and status class (``proxyRequest(route:status:)``).
    private let proxyRequests: [[CoreMetrics.Counter]]
    /// From the request head written upstream to the response head read back.
    private let proxyUpstreamDuration: CoreMetrics.Timer
    private let proxyUpstreamErrors: CoreMetrics.Counter
    private let proxySessionsEnded: [SessionEnd: CoreMetrics.Counter]
    /// The log queue's drop count at the last scrape, to export the difference.
    private let logLinesDroppedSeen = Mutex(0)
    private let scrapeHooks = Mutex<[@Sendable (ServiceMetrics) -> Void]>([])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        let reviewBuckets: [Duration] = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1),
        ]
        factory.defaultDurationHistogramBuckets = reviewBuckets
        factory.durationHistogramBuckets["kube_api_auth_proxy_upstream_duration_seconds"] = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
        ]
        self.factory = factory
        let prefix = "kube_api_auth_"
        var reviews: [String: CoreMetrics.Counter] = [:]
        func reviewCounter(_ result: ReviewResult, _ reason: String) {
            reviews["\(result.rawValue)/\(reason)"] = CoreMetrics.Counter(
                label: prefix + "reviews_total", dimensions: [("result", result.rawValue), ("reason", reason)], factory: factory)
        }
        reviewCounter(.authenticated, "none")
        for reason in RefusalReason.allCases { reviewCounter(.refused, reason.rawValue) }
        for code in TokenReviewDecodingError.Code.allCases { reviewCounter(.malformed, code.rawValue) }
        for reason in UnavailableReason.allCases { reviewCounter(.unavailable, reason.rawValue) }
        self.reviews = reviews
        authenticatedReviews = reviews["authenticated/none"]!
        refusedReviews = Dictionary(uniqueKeysWithValues: RefusalReason.allCases.map { ($0, reviews["refused/\($0.rawValue)"]!) })
        reviewDuration = CoreMetrics.Timer(label: prefix + "review_duration_seconds", dimensions: [], factory: factory)
        verifyDuration = Dictionary(
            uniqueKeysWithValues: HashAlgorithm.allCases.map {
                ($0, CoreMetrics.Timer(label: prefix + "hash_verify_duration_seconds", dimensions: [("algorithm", $0.rawValue)], factory: factory))
            })
        cacheHits = CoreMetrics.Counter(label: prefix + "verified_cache_requests_total", dimensions: [("result", "hit")], factory: factory)
        cacheMisses = CoreMetrics.Counter(label: prefix + "verified_cache_requests_total", dimensions: [("result", "miss")], factory: factory)
        cacheEvictions = CoreMetrics.Counter(label: prefix + "verified_cache_evictions_total", dimensions: [], factory: factory)
        inFlight = CoreMetrics.Meter(label: prefix + "reviews_in_flight", dimensions: [], factory: factory)
        func perKind<M>(_ make: (RecordKind) -> M) -> [RecordKind: M] {
            Dictionary(uniqueKeysWithValues: RecordKind.allCases.map { ($0, make($0)) })
        }
        records = perKind { CoreMetrics.Meter(label: prefix + "records", dimensions: [("kind", $0.rawValue)], factory: factory) }
        lastSync = perKind { CoreMetrics.Meter(label: prefix + "last_sync_timestamp_seconds", dimensions: [("kind", $0.rawValue)], factory: factory) }
        watchRestarts = perKind { CoreMetrics.Counter(label: prefix + "watch_restarts_total", dimensions: [("kind", $0.rawValue)], factory: factory) }
        relists = perKind { CoreMetrics.Counter(label: prefix + "relists_total", dimensions: [("kind", $0.rawValue)], factory: factory) }
        var writes: [String: CoreMetrics.Counter] = [:]
        for kind in WriteKind.allCases {
            for outcome in WriteOutcome.allCases {
                writes["\(kind.rawValue)/\(outcome.rawValue)"] = CoreMetrics.Counter(
                    label: prefix + "writes_total", dimensions: [("kind", kind.rawValue), ("outcome", outcome.rawValue)], factory: factory)
            }
        }
        self.writes = writes
        scryptQueueDepth = CoreMetrics.Meter(label: prefix + "scrypt_queue_depth", dimensions: [], factory: factory)
        guessedTokens = CoreMetrics.Meter(label: prefix + "guessed_tokens", dimensions: [], factory: factory)
        verifiedCacheEntries = CoreMetrics.Meter(label: prefix + "verified_cache_entries", dimensions: [], factory: factory)
        snapshotAge = CoreMetrics.Meter(label: prefix + "snapshot_age_seconds", dimensions: [], factory: factory)
        var unusable: [RecordFinding.Kind: [RecordFinding.Reason: CoreMetrics.Meter]] = [:]
        for kind in RecordFinding.Kind.allCases {
            for reason in kind.reasons {
                let dimensions = [("kind", kind.metricLabel), ("reason", reason.rawValue)]
                unusable[kind, default: [:]][reason] = CoreMetrics.Meter(label: prefix + "records_unusable", dimensions: dimensions, factory: factory)
            }
        }
        recordsUnusable = unusable
        snapshotWriteFailures = CoreMetrics.Counter(label: prefix + "snapshot_write_failures_total", dimensions: [], factory: factory)
        logLinesDropped = CoreMetrics.Counter(label: prefix + "log_lines_dropped_total", dimensions: [], factory: factory)
        proxyRequests = ProxyRouteKind.allCases.map { route in
            ["1xx", "2xx", "3xx", "4xx", "5xx"].map { status in
                CoreMetrics.Counter(
                    label: prefix + "proxy_requests_total", dimensions: [("route", route.rawValue), ("code", status)], factory: factory)
            }
        }
        proxyUpstreamDuration = CoreMetrics.Timer(label: prefix + "proxy_upstream_duration_seconds", dimensions: [], factory: factory)
        proxyUpstreamErrors = CoreMetrics.Counter(label: prefix + "proxy_upstream_errors_total", dimensions: [], factory: factory)
        proxySessionsEnded = Dictionary(
            uniqueKeysWithValues: SessionEnd.allCases.map { reason in
                (
                    reason,
                    CoreMetrics.Counter(label: prefix + "proxy_sessions_ended_total", dimensions: [("reason", reason.rawValue)], factory: factory)
                )
            })
        emergencyReviews = Dictionary(
            uniqueKeysWithValues: (["authenticated"] + RefusalReason.allCases.map(\.rawValue)).map { outcome in
                (outcome, CoreMetrics.Counter(label: prefix + "emergency_reviews_total", dimensions: [("outcome", outcome)], factory: factory))
            })
    }

    // MARK: Recording

    /// How the proxy routed a request, for `kube_api_auth_proxy_requests_total{route}`.
    public enum ProxyRouteKind: String, Sendable, CaseIterable {
        /// A Rancher or emergency token: forwarded impersonating its user.
        case impersonated
        /// Forwarded with the client's own credential (or none).
        case passThrough = "pass_through"
        /// Answered by the proxy (401, 403, 400, 503) without forwarding.
        case answered

        var index: Int {
            switch self {
            case .impersonated: 0
            case .passThrough: 1
            case .answered: 2
            }
        }
    }

    package func proxyRequest(route: ProxyRouteKind, status: Int) {
        proxyRequests[route.index][min(max(status / 100, 1), 5) - 1].increment()
    }

    package func proxyUpstream(duration: Duration) { proxyUpstreamDuration.recordNanoseconds(duration.nanoseconds) }
    package func proxyUpstreamFailed() { proxyUpstreamErrors.increment() }
    package func proxySessionEnded(_ reason: SessionEnd) { proxySessionsEnded[reason]?.increment() }

    func review(_ result: ReviewResult, reason: String, duration: Duration) {
        reviews["\(result.rawValue)/\(reason)"]?.increment()
        reviewDuration.recordNanoseconds(duration.nanoseconds)
    }

    /// A decided review: authenticated, or refused for `reason`.
    func review(_ decision: Decision, duration: Duration) {
        switch decision.outcome {
        case .authenticated: authenticatedReviews.increment()
        case .refused(let reason): refusedReviews[reason]?.increment()
        }
        if decision.emergency != nil {
            emergencyReviews[decision.refusalReason?.rawValue ?? "authenticated"]?.increment()
        }
        reviewDuration.recordNanoseconds(duration.nanoseconds)
    }

    /// Runs a hash check and records how long it took, per algorithm.
    func timedVerification(_ pending: PendingVerification) -> Decision {
        let start = ContinuousClock.now
        let decision = pending.run()
        verifyDuration[pending.hash.algorithm]?.recordNanoseconds(start.duration(to: .now).nanoseconds)
        return decision
    }

    func verifiedCache(hit: Bool) { (hit ? cacheHits : cacheMisses).increment() }
    func verifiedCacheEvicted() { cacheEvictions.increment() }
    func reviewStarted() { inFlight.increment() }
    func reviewEnded() { inFlight.decrement() }
    func watchRestarted(_ kind: RecordKind) { watchRestarts[kind]?.increment() }
    func relisted(_ kind: RecordKind) { relists[kind]?.increment() }
    func write(_ kind: WriteKind, _ outcome: WriteOutcome) { writes["\(kind.rawValue)/\(outcome.rawValue)"]?.increment() }
    func snapshotWriteFailed() { snapshotWriteFailures.increment() }

    /// Exports `queue`'s dropped lines (log lines lost because the log reader fell behind).
    package func exportDroppedLogLines(of queue: LogQueue) {
        let total = queue.droppedLines
        let delta = logLinesDroppedSeen.withLock { seen in
            defer { seen = max(seen, total) }
            return total - seen
        }
        if delta > 0 { logLinesDropped.increment(by: delta) }
    }

    // Values read when scraped.
    func setRecords(_ kind: RecordKind, count: Int) { records[kind]?.set(count) }
    func setLastSync(_ kind: RecordKind, unixSeconds: Double) { lastSync[kind]?.set(unixSeconds) }
    func setScryptQueueDepth(_ value: Int) { scryptQueueDepth.set(value) }
    func setGuessedTokens(_ value: Int) { guessedTokens.set(value) }
    func setVerifiedCacheEntries(_ value: Int) { verifiedCacheEntries.set(value) }
    func setSnapshotAge(seconds: Double) { snapshotAge.set(seconds) }

    /// Every census gauge, from one census (a reason absent from it reads 0).
    func setCensus(_ census: RecordCensus) {
        let counts = census.countsByReason
        for (kind, gauges) in recordsUnusable {
            for (reason, gauge) in gauges { gauge.set(counts[kind]?[reason] ?? 0) }
        }
    }

    /// Registers a hook that refreshes gauges just before each scrape.
    public func onScrape(_ hook: @escaping @Sendable (ServiceMetrics) -> Void) {
        scrapeHooks.withLock { $0.append(hook) }
    }

    /// The Prometheus text exposition (format 0.0.4).
    public func render() -> [UInt8] {
        for hook in scrapeHooks.withLock({ $0 }) { hook(self) }
        return registry.emitToBuffer()
    }
}
