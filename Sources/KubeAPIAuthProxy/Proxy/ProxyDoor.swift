import KubeClient
import Logging
import NIOCore
import NIOHTTP1
import RancherAuth
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// The proxy's front door: decides, from a request head, whether the request is forwarded (and
/// as whom) or answered here, using the same ``AuthenticationCore`` as the webhook.
///
/// - A Rancher or emergency token the core authenticates → forwarded with the proxy's token and
///   `Impersonate-User`/`Impersonate-Group` for the user the webhook would return.
/// - A token the core refuses → `401` `Status`; the core cannot tell → `503` `Status`.
/// - A client's own impersonation with such a token → every check a SubjectAccessReview for the
///   Rancher user allows, or `403` `Status`.
/// - A query with `access_token` → `400` `Status`, never forwarded (the URL would carry a secret
///   into kube-apiserver's audit log).
/// - Anything else (no credential, a service-account or other token) → passed through with the
///   client's own headers (when `passThrough` is on; `401` otherwise); another scheme → `401`.
public final class ProxyDoor: Sendable {
    let core: AuthenticationCore
    let upstream: UpstreamTarget
    let passThrough: Bool
    let metrics: ServiceMetrics
    let logger: Logger
    let auditEnabled: Bool
    /// The exchanges forwarded under an identity of ours, re-decided as the records change.
    let sessions: OpenExchanges

    /// Refusals that mean "not a token of ours": the request is someone else's to decide. A
    /// Rancher-shaped token without a record (`token_not_found`) is not among them: kube-apiserver
    /// could not accept it either, and passing it on would send a Rancher secret upstream.
    static let notOurs: Set<RefusalReason> = [.notRancherToken, .emergencyUnknownKey, .tokenTooLong]

    public init(core: AuthenticationCore, upstream: UpstreamTarget, passThrough: Bool, logger: Logger, auditEnabled: Bool) {
        self.core = core
        self.upstream = upstream
        self.passThrough = passThrough
        self.metrics = core.metrics
        self.logger = logger
        self.auditEnabled = auditEnabled
        self.sessions = OpenExchanges(store: core.store, clock: core.clock, metrics: core.metrics, logger: logger, auditEnabled: auditEnabled)
    }

    /// Who a forwarded request acts as, for the audit line and the metrics.
    struct Caller: Sendable {
        var route: ServiceMetrics.ProxyRouteKind
        /// The Rancher user, when a token of ours was presented.
        var user: String?
        /// What the upstream request impersonates, when it differs from `user` (`--as`).
        var impersonated: String?
        /// What the exchange stays valid only as long as (a token of ours authenticated it).
        var session: SessionIdentity?
        /// The records' generation read before the review (``OpenExchanges/register(_:reviewedAt:on:end:)``).
        var reviewedAt: Int?
    }

    enum Route: Sendable {
        case forward(HTTPHeaders, Caller)
        /// Answered here, with the same error answers as the webhook's (a Kubernetes `Status`).
        case answer(HTTPAnswer, Caller)
    }

    /// Decides what happens to a request. Cheap and synchronous unless a scrypt check or a
    /// SubjectAccessReview is needed.
    func route(_ head: HTTPRequestHead, client: PeerAddress, start: ContinuousClock.Instant, on eventLoop: any EventLoop) -> Eventual<Route> {
        let headers = head.headers.map { (name: $0.name, value: $0.value) }
        if let problem = ProxyRequestPolicy.framingProblem(headers) {
            return .now(Self.answer(.badRequest, "BadRequest", "the request's framing is ambiguous: \(problem)"))
        }
        if ProxyRequestPolicy.queryCarriesCredential(head.uri) {
            return .now(
                Self.answer(
                    .badRequest, "BadRequest",
                    "credentials are not accepted in the URL (access_token); send the token in the Authorization header"))
        }
        switch ProxyRequestPolicy.credential(headers) {
        case .invalid(let why):
            return .now(Self.answer(.badRequest, "BadRequest", why))
        case .none:
            return .now(passThrough(headers, clientAddress: client.ip))
        case .otherScheme:
            // kube-apiserver accepts no scheme but Bearer; forwarding one could only leak what is in it.
            return .now(Self.answer(.unauthorized, "Unauthorized", "only bearer tokens are accepted"))
        case .bearer(let token, _):
            // Read before the review: an open exchange needs no re-check while it is still current.
            let generation = core.store.generation
            // The proxy knows its client: an expensive (scrypt) check is charged to the client's host.
            let outcome = core.authenticate(token: token, source: client.text, client: client.ip, start: start)
            // Nearly every token is decided now: identified directly, no closure made for it.
            guard case .now(let decided) = outcome else {
                return outcome.flatMap {
                    self.identify($0, reviewedAt: generation, headers: headers, clientAddress: client.ip, on: eventLoop)
                }
            }
            return identify(decided, reviewedAt: generation, headers: headers, clientAddress: client.ip, on: eventLoop)
        }
    }

    private func identify(
        _ outcome: AuthenticationOutcome, reviewedAt generation: Int, headers: ProxyRequestPolicy.Headers, clientAddress: String,
        on eventLoop: any EventLoop
    ) -> Eventual<Route> {
        switch outcome {
        case .unavailable(let reason):
            return .now(Self.answer(.serviceUnavailable, "ServiceUnavailable", "the Rancher token cannot be verified now: \(reason.message)"))
        case .refused(let reason) where Self.notOurs.contains(reason):
            return .now(passThrough(headers, clientAddress: clientAddress))
        case .refused:
            return .now(Self.answer(.unauthorized, "Unauthorized", "Unauthorized"))
        case .authenticated(let user, let session):
            let name = user.attribute.name
            let groups = user.attribute.groups
            switch ProxyRequestPolicy.impersonation(headers) {
            case .none:
                return .now(
                    forward(
                        headers, as: ProxyRequestPolicy.Impersonation(user: name, groups: groups), user: name, session: session,
                        reviewedAt: generation, clientAddress: clientAddress))
            case .invalid(let why):
                return .now(Self.answer(.badRequest, "BadRequest", why, user: name))
            case .requested(let requested):
                return .later(
                    allowed(user: name, groups: groups, toImpersonate: requested, on: eventLoop).map { allowed in
                        guard allowed else {
                            return Self.answer(
                                .forbidden, "Forbidden",
                                "user \"\(name)\" cannot impersonate \(Self.describe(requested)): no RBAC rule allows it", user: name)
                        }
                        return self.forward(
                            headers, as: requested, user: name, session: session, reviewedAt: generation, clientAddress: clientAddress)
                    })
            }
        }
    }

    private func forward(
        _ headers: ProxyRequestPolicy.Headers, as identity: ProxyRequestPolicy.Impersonation, user: String, session: SessionIdentity?,
        reviewedAt generation: Int, clientAddress: String
    ) -> Route {
        let token: String
        do {
            token = try upstream.proxyToken()
        } catch {
            logger.error("the proxy's own token cannot be read", metadata: ["error": "\(error)"])
            return Self.answer(.serviceUnavailable, "ServiceUnavailable", "the proxy's credential is unavailable", user: user)
        }
        let upstreamHeaders = ProxyRequestPolicy.upstreamHeaders(
            headers, identity: .impersonating(identity, proxyToken: token), clientAddress: clientAddress)
        let caller = Caller(
            route: .impersonated, user: user, impersonated: identity.user == user ? nil : identity.user, session: session, reviewedAt: generation)
        return .forward(HTTPHeaders(upstreamHeaders.map { ($0.name, $0.value) }), caller)
    }

    private func passThrough(_ headers: ProxyRequestPolicy.Headers, clientAddress: String) -> Route {
        guard passThrough else {
            return Self.answer(.unauthorized, "Unauthorized", "only Rancher tokens are accepted here (--passthrough is off)")
        }
        let upstreamHeaders = ProxyRequestPolicy.upstreamHeaders(headers, identity: .passThrough, clientAddress: clientAddress)
        return .forward(HTTPHeaders(upstreamHeaders.map { ($0.name, $0.value) }), Caller(route: .passThrough))
    }

    /// Every SubjectAccessReview kube-apiserver would make for the impersonation, asked for the
    /// authenticated Rancher user; all must allow. An error counts as a denial.
    private func allowed(
        user: String, groups: [String], toImpersonate requested: ProxyRequestPolicy.Impersonation, on eventLoop: any EventLoop
    ) -> Completion<Bool> {
        var asGroups = groups
        if !asGroups.contains("system:authenticated") { asGroups.append("system:authenticated") }
        let reviews = ProxyRequestPolicy.impersonationChecks(requested).map { check in
            upstream.client.subjectAccessReview(user: user, groups: asGroups, attributes: check, on: eventLoop)
        }
        let answer = Completion<Bool>()
        EventLoopFuture.whenAllComplete(reviews, on: eventLoop).whenSuccess { results in
            answer.complete(
                results.allSatisfy { result in
                    switch result {
                    case .success(let allowed): return allowed
                    case .failure(let error):
                        self.logger.warning("SubjectAccessReview failed; impersonation denied", metadata: ["user": "\(user)", "error": "\(error)"])
                        return false
                    }
                })
        }
        return answer
    }

    static func describe(_ impersonation: ProxyRequestPolicy.Impersonation) -> String {
        var parts: [String] = []
        if let user = impersonation.user { parts.append("user \"\(user)\"") }
        parts += impersonation.groups.map { "group \"\($0)\"" }
        if let uid = impersonation.uid { parts.append("uid \"\(uid)\"") }
        for (key, values) in impersonation.extras.sorted(by: { $0.key < $1.key }) { parts += values.map { "extra \(key)=\"\($0)\"" } }
        return parts.joined(separator: ", ")
    }

    static func answer(_ status: HTTPResponseStatus, _ reason: String, _ message: String, user: String? = nil) -> Route {
        .answer(.status(status, reason: reason, message: message), Caller(route: .answered, user: user))
    }

    /// One info line per proxied request (never a header value, never a query string).
    func audit(
        _ caller: Caller, method: HTTPMethod, uri: String, status: Int, bytes: Int, duration: Duration, client: PeerAddress,
        protocolName: String
    ) {
        metrics.proxyRequest(route: caller.route, status: status)
        guard auditEnabled else { return }
        var metadata: Logger.Metadata = [
            "route": "\(caller.route.rawValue)", "verb": "\(method.rawValue)",
            "path": "\(AuditLog.bounded(uri.split(separator: "?", maxSplits: 1).first ?? ""))",
            "status": "\(status)", "bytes": "\(bytes)", "duration_ms": "\(duration.logMilliseconds)",
            "source": "\(client.text)", "proto": "\(protocolName)",
        ]
        if let user = caller.user { metadata["user"] = "\(user)" }
        if let impersonated = caller.impersonated { metadata["impersonated"] = "\(AuditLog.bounded(impersonated, to: 253))" }
        logger.info("proxied", metadata: metadata)
    }
}
