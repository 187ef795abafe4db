import Logging
import NIOCore
import NIOHTTP1
import RancherAuth
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// The token-webhook front door: reads a `TokenReview` (or a `SelfSubjectReview`'s bearer token),
/// asks the ``AuthenticationCore`` and renders its outcome as kube-apiserver expects it.
///
/// Answers go out as bytes rendered ahead of time: a success body per user and apiVersion when the
/// records were loaded, a refusal body per reason and apiVersion once.
public struct WebhookDoor: Sendable {
    public let core: AuthenticationCore

    public init(core: AuthenticationCore) {
        self.core = core
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

    /// What an outcome is answered as (a value, not a closure: nothing to allocate per review).
    enum AnswerShape: Sendable {
        case tokenReview(TokenReviewAPIVersion)
        case selfSubjectReview(apiVersion: String)
    }

    /// `POST /v1/authenticate`.
    public func tokenReview(body: UnsafeRawBufferPointer, source: String = "-") -> Eventual<HTTPAnswer> {
        let start = ContinuousClock.now
        let request: TokenReviewRequest
        do {
            request = try TokenReviewDecoder.decode(body)
        } catch {
            core.logger.debug("malformed token review", metadata: ["reason": "\(error.code.rawValue)", "source": "\(source)"])
            core.recordMalformed(reason: error.code.rawValue, start: start)
            return .now(.status(.badRequest, reason: "BadRequest", message: error.message))
        }
        return answer(
            core.authenticate(token: request.token, source: source, start: start), as: .tokenReview(request.apiVersion))
    }

    /// `POST /apis/authentication.k8s.io/<version>/selfsubjectreviews` with `Authorization: Bearer`,
    /// what `kubectl auth whoami` sends: the token's user, or 401 with a `Status`.
    public func selfSubjectReview(
        authorization: String?, apiVersion: String, source: String = "-"
    ) -> Eventual<HTTPAnswer> {
        guard let authorization, let token = BearerAuthorization.token(authorization) else {
            return .now(Self.unauthorized)
        }
        return answer(
            core.authenticate(token: token, source: source, start: .now), as: .selfSubjectReview(apiVersion: apiVersion))
    }

    private func answer(_ outcome: Eventual<AuthenticationOutcome>, as shape: AnswerShape) -> Eventual<HTTPAnswer> {
        // Nearly every review is decided now: rendered directly, no closure made for it.
        guard case .now(let decided) = outcome else { return outcome.map { Self.render($0, as: shape) } }
        return .now(Self.render(decided, as: shape))
    }

    static let unauthorized = HTTPAnswer.status(.unauthorized, reason: "Unauthorized", message: "Unauthorized")

    static func render(_ outcome: AuthenticationOutcome, as shape: AnswerShape) -> HTTPAnswer {
        switch (shape, outcome) {
        case (.tokenReview(let apiVersion), .authenticated(let user, _)):
            return .json(prefix: TokenReviewResponse.prefix(apiVersion), user.authenticatedBodyRest)
        case (.tokenReview(let apiVersion), .refused(let reason)):
            let bodies = refusalBodies[reason]!
            return .json(apiVersion == .v1 ? bodies.v1 : bodies.v1beta1)
        case (.selfSubjectReview(let apiVersion), .authenticated(let user, _)):
            return .json(
                SelfSubjectReviewResponse.body(apiVersion: apiVersion, username: user.attribute.name, groups: user.attribute.groups),
                status: .created)
        case (.selfSubjectReview, .refused):
            return unauthorized
        case (_, .unavailable(let reason)):
            return .unavailable(reason.message)
        }
    }
}
