import Logging
import RancherAuth

/// The one authentication core behind both front doors: a bearer token in, a decision out.
///
/// It holds what a decision needs beyond the pure rules of ``Authenticator``: the current records
/// (``RecordStore``), the revocation-safe ``VerifiedTokenCache``, the ``FailureCounter``, the
/// scrypt ``ExpensiveHashWorkers``, and it reports every decision to the metrics, the audit log and
/// the effects sink (lastUsedAt, needsRefresh, legacy-hash migration). It knows nothing of HTTP.
///
/// The hot path: look the token up in an immutable snapshot, reuse a verification of exactly these
/// records or check a SHA-2/SHA-3 hash inline (about a microsecond), and return. Only scrypt checks
/// leave the caller's thread.
public final class AuthenticationCore: Sendable {
    package let store: RecordStore
    let authenticator = Authenticator()
    package let clock: any WallClock
    package let workers: ExpensiveHashWorkers
    package let effects: any ReviewEffectsSink
    let verifiedCache: VerifiedTokenCache
    let failures: FailureCounter
    /// Tokens longer than this are refused before any lookup (Rancher's are under 100 bytes).
    let maxTokenBytes: Int
    public let metrics: ServiceMetrics
    package let audit: AuditLog
    package let logger: Logger

    public init(
        store: RecordStore, clock: any WallClock, workers: ExpensiveHashWorkers, effects: any ReviewEffectsSink,
        verifiedCache: VerifiedTokenCache = VerifiedTokenCache(capacity: 10_000),
        failures: FailureCounter = FailureCounter(maxFailures: 10, window: .seconds(60)), maxTokenBytes: Int = 4096,
        metrics: ServiceMetrics = ServiceMetrics(), audit: AuditLog? = nil, logger: Logger
    ) {
        self.store = store
        self.clock = clock
        self.workers = workers
        self.effects = effects
        self.verifiedCache = verifiedCache
        self.failures = failures
        self.maxTokenBytes = maxTokenBytes
        self.metrics = metrics
        self.audit = audit ?? AuditLog(logger: logger)
        self.logger = logger
        metrics.onScrape { [workers, failures, verifiedCache] metrics in
            metrics.setScryptQueueDepth(workers.queued)
            metrics.setGuessedTokens(failures.suspectCount)
            metrics.setVerifiedCacheEntries(verifiedCache.count)
        }
    }

    /// Decides who `token` is.
    ///
    /// - Parameters:
    ///   - source: the caller's `ip:port`, for the audit line.
    ///   - client: the end client's host where the door knows it (the proxy), which an expensive
    ///     check is charged to (``ExpensiveHashWorkers``); `nil` where every request comes through
    ///     one relay (the webhook: kube-apiserver asks for everyone).
    ///   - start: when the request began, for the latency metric and the audit line.
    /// - Returns: the outcome now, or (after an expensive check on the workers) later, completed on
    ///   a worker thread: a door on an event loop hops it onto its loop.
    public func authenticate(
        token: String, source: String, client: String? = nil, start: ContinuousClock.Instant
    ) -> Eventual<AuthenticationOutcome> {
        metrics.reviewStarted()
        guard token.utf8.count <= maxTokenBytes else {
            return .now(finish(Decision(outcome: .refused(.tokenTooLong), tokenName: nil), source: source, start: start))
        }
        guard let snapshot = store.snapshot else {
            return .now(unavailable(.notSynced, start: start))
        }
        let pending: PendingVerification
        switch authenticator.begin(token: token, snapshot: snapshot, now: clock.now()) {
        case .decided(let decision):
            return .now(finish(decision, source: source, start: start))
        case .verify(let verification):
            pending = verification
        }
        // Verified before against exactly these records: no hashing. Expiry, enabled flags and the
        // user were re-checked by `begin` just now.
        let key = VerifiedTokenCache.key(for: token)
        let cached = verifiedCache.contains(key, versions: pending.versions)
        metrics.verifiedCache(hit: cached)
        if cached {
            return .now(finish(pending.decide(secretMatches: true), source: source, start: start, cached: true))
        }
        // Every secret is checked, however many wrong ones came before: a count kept by the name,
        // which is public, must never make the owner's correct secret fail (FailureCounter).
        if !pending.isExpensive {
            return .now(finish(remember(metrics.timedVerification(pending), key: key, pending: pending), source: source, start: start))
        }
        guard let verified = workers.verify(pending, metrics: metrics, chargedTo: client) else {
            logger.warning("expensive hash queue full; answering 503", metadata: ["token": "\(pending.token.name)"])
            return .now(unavailable(.scryptQueueFull, start: start))
        }
        return .later(
            verified.map { decision in
                guard let decision else { return self.unavailable(.verificationFailed, start: start) }
                return self.finish(self.remember(decision, key: key, pending: pending), source: source, start: start)
            })
    }

    /// Counts a request a door could not even read (a malformed TokenReview): metrics only.
    public func recordMalformed(reason: String, start: ContinuousClock.Instant) {
        metrics.review(.malformed, reason: reason, duration: start.duration(to: .now))
    }

    /// Feeds the outcome of a hash check to the cache and the failure counter (which marks a
    /// refusal `guessing` once the name has had `maxFailures` wrong secrets in its window).
    private func remember(_ decision: Decision, key: VerifiedTokenCache.Key, pending: PendingVerification) -> Decision {
        var decision = decision
        if decision.isAuthenticated {
            if verifiedCache.insert(key, versions: pending.versions) { metrics.verifiedCacheEvicted() }
            failures.recordSuccess(pending.accessKey)
        } else if decision.refusalReason == .secretMismatch {
            decision.guessing = failures.recordFailure(pending.accessKey)
        }
        return decision
    }

    private func unavailable(_ reason: UnavailableReason, start: ContinuousClock.Instant) -> AuthenticationOutcome {
        metrics.review(.unavailable, reason: reason.rawValue, duration: start.duration(to: .now))
        metrics.reviewEnded()
        return .unavailable(reason)
    }

    private func finish(
        _ decision: Decision, source: String, start: ContinuousClock.Instant, cached: Bool = false
    ) -> AuthenticationOutcome {
        let duration = start.duration(to: .now)
        metrics.review(decision, duration: duration)
        metrics.reviewEnded()
        audit.record(decision, source: source, duration: duration, cached: cached)
        if !decision.effects.isEmpty { effects.submit(decision.effects, for: decision) }
        switch decision.outcome {
        case .authenticated(let user): return .authenticated(user, decision.session)
        case .refused(let reason): return .refused(reason)
        }
    }
}
