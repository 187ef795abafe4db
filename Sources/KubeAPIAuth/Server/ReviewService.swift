import Logging
import NIOCore
import NIOHTTP1
import RancherAuth

/// Answers TokenReviews and SelfSubjectReviews from the current records.
///
/// The hot path is: scan the request bytes (no JSON tree), look the token up in an immutable
/// snapshot, check a SHA-2/SHA-3 hash inline (or reuse a verification of the same records),
/// and reply with bytes rendered when the records were loaded. scrypt checks go to
/// ``ExpensiveHashWorkers``. Every decision is counted and audited.
public final class ReviewService: Sendable {
    let store: RecordStore
    let authenticator = Authenticator()
    let clock: any WallClock
    let workers: ExpensiveHashWorkers
    let effects: any ReviewEffectsSink
    let verifiedCache: VerifiedTokenCache
    let throttle: FailureThrottle
    /// Tokens longer than this are refused before any lookup (Rancher's are under 100 bytes).
    let maxTokenBytes: Int
    let metrics: ServiceMetrics
    let audit: AuditLog
    let logger: Logger

    public init(
        store: RecordStore, clock: any WallClock, workers: ExpensiveHashWorkers, effects: any ReviewEffectsSink,
        verifiedCache: VerifiedTokenCache = VerifiedTokenCache(capacity: 10_000),
        throttle: FailureThrottle = FailureThrottle(maxFailures: 10, window: .seconds(60)), maxTokenBytes: Int = 4096,
        metrics: ServiceMetrics = ServiceMetrics(), audit: AuditLog? = nil, logger: Logger
    ) {
        self.store = store
        self.clock = clock
        self.workers = workers
        self.effects = effects
        self.verifiedCache = verifiedCache
        self.throttle = throttle
        self.maxTokenBytes = maxTokenBytes
        self.metrics = metrics
        self.audit = audit ?? AuditLog(logger: logger)
        self.logger = logger
        metrics.onScrape { [workers, throttle, verifiedCache] metrics in
            metrics.setScryptQueueDepth(workers.queued)
            metrics.setThrottledTokens(throttle.throttledCount)
            metrics.setVerifiedCacheEntries(verifiedCache.count)
        }
    }

    /// Refusal bodies, rendered once per reason and version.
    private static let refusalBodies: [RefusalReason: (v1: [UInt8], v1beta1: [UInt8])] = Dictionary(
        uniqueKeysWithValues: RefusalReason.allCases.map { reason in
            (
                reason,
                (
                    TokenReviewResponse.refusedBody(apiVersion: .v1, error: reason.statusError),
                    TokenReviewResponse.refusedBody(apiVersion: .v1beta1, error: reason.statusError)
                )
            )
        })

    static let notLoaded = HTTPAnswer.unavailable("records are not loaded yet")

    /// Where a review came from and when it started, for latency, metrics and the audit line.
    struct Context: Sendable {
        var start: ContinuousClock.Instant
        var source: String
    }

    /// `POST /v1/authenticate`.
    public func tokenReview(body: UnsafeRawBufferPointer, eventLoop: any EventLoop, source: String = "-") -> EndpointResult {
        let context = Context(start: .now, source: source)
        metrics.reviewStarted()
        let request: TokenReviewRequest
        do {
            request = try TokenReviewDecoder.decode(body)
        } catch {
            logger.debug("malformed token review", metadata: ["reason": "\(error.code.rawValue)", "source": "\(source)"])
            ended(.malformed, reason: error.code.rawValue, context)
            return .answer(.status(.badRequest, reason: "BadRequest", message: error.message))
        }
        return decide(token: request.token, eventLoop: eventLoop, context: context, answer: .tokenReview(request.apiVersion))
    }

    /// What a decision is answered as (a value, not a closure: nothing to allocate per review).
    enum AnswerShape: Sendable {
        case tokenReview(TokenReviewAPIVersion)
        case selfSubjectReview(apiVersion: String)
    }

    static func render(_ decision: Decision, as shape: AnswerShape) -> HTTPAnswer {
        switch (shape, decision.outcome) {
        case (.tokenReview(let apiVersion), .authenticated(let user)):
            return .json(user.authenticatedBody(for: apiVersion))
        case (.tokenReview(let apiVersion), .refused(let reason)):
            let bodies = refusalBodies[reason]!
            return .json(apiVersion == .v1 ? bodies.v1 : bodies.v1beta1)
        case (.selfSubjectReview(let apiVersion), .authenticated(let user)):
            return .json(
                SelfSubjectReviewResponse.body(apiVersion: apiVersion, username: user.attribute.name, groups: user.attribute.groups),
                status: .created)
        case (.selfSubjectReview, .refused):
            return .status(.unauthorized, reason: "Unauthorized", message: "Unauthorized")
        }
    }

    /// `POST /apis/authentication.k8s.io/<version>/selfsubjectreviews` with `Authorization: Bearer`,
    /// what `kubectl auth whoami` sends: the token's user, or 401 with a `Status`.
    public func selfSubjectReview(
        authorization: String?, apiVersion: String, eventLoop: any EventLoop, source: String = "-"
    ) -> EndpointResult {
        guard let authorization, let token = Self.bearerToken(authorization) else {
            return .answer(.status(.unauthorized, reason: "Unauthorized", message: "Unauthorized"))
        }
        metrics.reviewStarted()
        return decide(
            token: token, eventLoop: eventLoop, context: Context(start: .now, source: source),
            answer: .selfSubjectReview(apiVersion: apiVersion))
    }

    /// `Bearer <token>`, scheme case-insensitive, as kube-apiserver reads it.
    static func bearerToken(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingPrefix(while: { $0 == " " })
        return token.isEmpty ? nil : String(token)
    }

    private func decide(
        token: String, eventLoop: any EventLoop, context: Context, answer shape: AnswerShape
    ) -> EndpointResult {
        guard token.utf8.count <= maxTokenBytes else {
            return .answer(finish(Decision(outcome: .refused(.tokenTooLong), tokenName: nil), context, as: shape))
        }
        guard let snapshot = store.snapshot else {
            ended(.unavailable, reason: ServiceMetrics.UnavailableReason.notSynced.rawValue, context)
            return .answer(Self.notLoaded)
        }
        let pending: PendingVerification
        switch authenticator.begin(token: token, snapshot: snapshot, now: clock.now()) {
        case .decided(let decision):
            return .answer(finish(decision, context, as: shape))
        case .verify(let verification):
            pending = verification
        }
        // Verified before against exactly these records: no hashing. Expiry, enabled flags and the
        // user were re-checked by `begin` just now.
        let key = VerifiedTokenCache.key(for: token)
        let cached = verifiedCache.contains(key, versions: pending.versions)
        metrics.verifiedCache(hit: cached)
        if cached {
            return .answer(finish(pending.decide(secretMatches: true), context, as: shape, cached: true))
        }
        if throttle.isThrottled(pending.accessKey) {
            let decision = Decision(
                outcome: .refused(.tooManyFailures), tokenName: pending.accessKey, token: pending.token, hashAlgorithm: pending.hash.algorithm)
            return .answer(finish(decision, context, as: shape))
        }
        if !pending.isExpensive {
            return .answer(finish(verify(pending, key: key), context, as: shape))
        }
        guard let future = workers.verify(pending, on: eventLoop, metrics: metrics) else {
            logger.warning("expensive hash queue full; answering 503", metadata: ["token": "\(pending.token.name)"])
            ended(.unavailable, reason: ServiceMetrics.UnavailableReason.scryptQueueFull.rawValue, context)
            return .answer(.unavailable("too many expensive verifications in progress"))
        }
        return .pending(
            future.map { decision in self.finish(self.remember(decision, key: key, pending: pending), context, as: shape) }
                .recover { _ in
                    self.ended(.unavailable, reason: ServiceMetrics.UnavailableReason.verificationFailed.rawValue, context)
                    return .unavailable("verification could not run")
                })
    }

    /// A cheap hash check, timed.
    private func verify(_ pending: PendingVerification, key: VerifiedTokenCache.Key) -> Decision {
        remember(metrics.timedVerification(pending), key: key, pending: pending)
    }

    /// Feeds the outcome of a hash check to the cache and the failure throttle.
    private func remember(_ decision: Decision, key: VerifiedTokenCache.Key, pending: PendingVerification) -> Decision {
        if decision.isAuthenticated {
            if verifiedCache.insert(key, versions: pending.versions) { metrics.verifiedCacheEvicted() }
            throttle.recordSuccess(pending.accessKey)
        } else if decision.refusalReason == .secretMismatch {
            throttle.recordFailure(pending.accessKey)
        }
        return decision
    }

    private func ended(_ result: ServiceMetrics.ReviewResult, reason: String, _ context: Context) {
        metrics.review(result, reason: reason, duration: context.start.duration(to: .now))
        metrics.reviewEnded()
    }

    private func finish(_ decision: Decision, _ context: Context, as shape: AnswerShape, cached: Bool = false) -> HTTPAnswer {
        let duration = context.start.duration(to: .now)
        metrics.review(decision, duration: duration)
        metrics.reviewEnded()
        audit.record(decision, source: context.source, duration: duration, cached: cached)
        if !decision.effects.isEmpty { effects.submit(decision.effects, for: decision) }
        return Self.render(decision, as: shape)
    }
}
