import Logging
import NIOCore
import NIOHTTP1
import RancherAuth

/// Answers TokenReviews and SelfSubjectReviews from the current records.
///
/// The hot path is: scan the request bytes (no JSON tree), look the token up in an immutable
/// snapshot, check a SHA-2/SHA-3 hash inline, and reply with bytes rendered when the records
/// were loaded. scrypt checks go to ``ExpensiveHashWorkers``.
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
    let logger: Logger

    public init(
        store: RecordStore, clock: any WallClock, workers: ExpensiveHashWorkers, effects: any ReviewEffectsSink,
        verifiedCache: VerifiedTokenCache = VerifiedTokenCache(capacity: 10_000),
        throttle: FailureThrottle = FailureThrottle(maxFailures: 10, window: .seconds(60)), maxTokenBytes: Int = 4096,
        logger: Logger
    ) {
        self.maxTokenBytes = maxTokenBytes
        self.store = store
        self.clock = clock
        self.workers = workers
        self.effects = effects
        self.verifiedCache = verifiedCache
        self.throttle = throttle
        self.logger = logger
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

    /// `POST /v1/authenticate`.
    public func tokenReview(body: UnsafeRawBufferPointer, eventLoop: any EventLoop) -> EndpointResult {
        let request: TokenReviewRequest
        do {
            request = try TokenReviewDecoder.decode(body)
        } catch {
            logger.debug("malformed token review", metadata: ["reason": "\(error.code.rawValue)"])
            return .answer(.status(.badRequest, reason: "BadRequest", message: error.message))
        }
        let apiVersion = request.apiVersion
        return decide(token: request.token, eventLoop: eventLoop) { decision in
            switch decision.outcome {
            case .authenticated(let user):
                return .json(user.authenticatedBody(for: apiVersion))
            case .refused(let reason):
                let bodies = Self.refusalBodies[reason]!
                return .json(apiVersion == .v1 ? bodies.v1 : bodies.v1beta1)
            }
        }
    }

    /// `POST /apis/authentication.k8s.io/<version>/selfsubjectreviews` with `Authorization: Bearer`,
    /// what `kubectl auth whoami` sends: the token's user, or 401 with a `Status`.
    public func selfSubjectReview(authorization: String?, apiVersion: String, eventLoop: any EventLoop) -> EndpointResult {
        guard let authorization, let token = Self.bearerToken(authorization) else {
            return .answer(.status(.unauthorized, reason: "Unauthorized", message: "Unauthorized"))
        }
        return decide(token: token, eventLoop: eventLoop) { decision in
            switch decision.outcome {
            case .authenticated(let user):
                return .json(
                    SelfSubjectReviewResponse.body(
                        apiVersion: apiVersion, username: user.attribute.name, groups: user.attribute.groups),
                    status: .created)
            case .refused:
                return .status(.unauthorized, reason: "Unauthorized", message: "Unauthorized")
            }
        }
    }

    /// `Bearer <token>`, scheme case-insensitive, as kube-apiserver reads it.
    static func bearerToken(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingPrefix(while: { $0 == " " })
        return token.isEmpty ? nil : String(token)
    }

    private func decide(
        token: String, eventLoop: any EventLoop, render: @escaping @Sendable (Decision) -> HTTPAnswer
    ) -> EndpointResult {
        guard token.utf8.count <= maxTokenBytes else {
            return .answer(finish(Decision(outcome: .refused(.tokenTooLong), tokenName: nil), render: render))
        }
        guard let snapshot = store.snapshot else { return .answer(Self.notLoaded) }
        let pending: PendingVerification
        switch authenticator.begin(token: token, snapshot: snapshot, now: clock.now()) {
        case .decided(let decision):
            return .answer(finish(decision, render: render))
        case .verify(let verification):
            pending = verification
        }
        // Verified before against exactly these records: no hashing. Expiry, enabled flags and the
        // user were re-checked by `begin` just now.
        let key = VerifiedTokenCache.key(for: token)
        if verifiedCache.contains(key, versions: pending.versions) {
            return .answer(finish(pending.decide(secretMatches: true), render: render, cached: true))
        }
        if throttle.isThrottled(pending.accessKey) {
            let decision = Decision(
                outcome: .refused(.tooManyFailures), tokenName: pending.accessKey, token: pending.token, hashAlgorithm: pending.hash.algorithm)
            return .answer(finish(decision, render: render))
        }
        if !pending.isExpensive {
            return .answer(finish(remember(pending.run(), key: key, pending: pending), render: render))
        }
        guard let future = workers.verify(pending, on: eventLoop) else {
            logger.warning("expensive hash queue full; answering 503", metadata: ["token": "\(pending.token.name)"])
            return .answer(.unavailable("too many expensive verifications in progress"))
        }
        return .pending(
            future.map { decision in self.finish(self.remember(decision, key: key, pending: pending), render: render) }
                .recover { _ in .unavailable("verification could not run") })
    }

    /// Feeds the outcome of a hash check to the cache and the failure throttle.
    private func remember(_ decision: Decision, key: VerifiedTokenCache.Key, pending: PendingVerification) -> Decision {
        if decision.isAuthenticated {
            verifiedCache.insert(key, versions: pending.versions)
            throttle.recordSuccess(pending.accessKey)
        } else if decision.refusalReason == .secretMismatch {
            throttle.recordFailure(pending.accessKey)
        }
        return decision
    }

    private func finish(_ decision: Decision, render: (Decision) -> HTTPAnswer, cached: Bool = false) -> HTTPAnswer {
        if logger.logLevel <= .debug {
            var metadata: Logger.Metadata = ["authenticated": "\(decision.isAuthenticated)"]
            if let reason = decision.refusalReason { metadata["reason"] = "\(reason.rawValue)" }
            // The token name is the public half of the credential; the secret never reaches a log.
            if let name = decision.tokenName { metadata["token"] = "\(name)" }
            if case .authenticated(let user) = decision.outcome { metadata["user"] = "\(user.attribute.name)" }
            if let algorithm = decision.hashAlgorithm {
                metadata["hash"] = "\(algorithm.rawValue)"
                metadata["verification"] = cached ? "cached" : "hashed"
            }
            logger.debug("token review", metadata: metadata)
        }
        if !decision.effects.isEmpty { effects.submit(decision.effects, for: decision) }
        return render(decision)
    }
}
