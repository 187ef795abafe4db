import Foundation
import NIOCore

/// What is asked of the authorizer: may this user do this to this resource?
public struct ResourceAttributes: Codable, Sendable, Hashable {
    public var verb: String
    public var group: String
    public var resource: String
    public var namespace: String?
    public var name: String?
    public var subresource: String?

    public init(verb: String, group: String = "", resource: String, namespace: String? = nil, name: String? = nil) {
        self.verb = verb
        self.group = group
        self.resource = resource
        self.namespace = namespace
        self.name = name
    }
}

extension KubeClient {
    private struct ReviewBody: Encodable {
        struct Spec: Encodable {
            var user: String
            var groups: [String]
            var uid: String?
            var extra: [String: [String]]?
            var resourceAttributes: ResourceAttributes
        }

        var apiVersion = "authorization.k8s.io/v1"
        var kind = "SubjectAccessReview"
        var spec: Spec
    }

    private struct ReviewAnswer: Decodable {
        struct Status: Decodable {
            var allowed: Bool?
        }

        var status: Status?
    }

    /// Asks kube-apiserver's authorizer (a `SubjectAccessReview`) whether `user`, a member of
    /// `groups`, may do `attributes`. Needs `create` on `subjectaccessreviews`.
    public func subjectAccessReview(
        user: String, groups: [String], uid: String? = nil, extra: [String: [String]] = [:], attributes: ResourceAttributes
    ) async throws(KubeError) -> Bool {
        let body = try Self.reviewBody(user: user, groups: groups, uid: uid, extra: extra, attributes: attributes)
        return try Self.allowed(try await post(Self.reviewPath, body: body))
    }

    /// The same question for callers on an event loop; the answer is delivered on `eventLoop`.
    public func subjectAccessReview(
        user: String, groups: [String], uid: String? = nil, extra: [String: [String]] = [:], attributes: ResourceAttributes,
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<Bool> {
        do {
            let body = try Self.reviewBody(user: user, groups: groups, uid: uid, extra: extra, attributes: attributes)
            return post(Self.reviewPath, body: body, on: eventLoop).flatMapThrowing { try Self.allowed($0) }
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
    }

    private static let reviewPath = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

    private static func reviewBody(
        user: String, groups: [String], uid: String?, extra: [String: [String]], attributes: ResourceAttributes
    ) throws(KubeError) -> Data {
        let body = ReviewBody(
            spec: .init(user: user, groups: groups, uid: uid, extra: extra.isEmpty ? nil : extra, resourceAttributes: attributes))
        do {
            return try JSONEncoder().encode(body)
        } catch {
            throw KubeError(.decoding, "SubjectAccessReview cannot be encoded")
        }
    }

    private static func allowed(_ answer: Data) throws(KubeError) -> Bool {
        do {
            return try JSONDecoder().decode(ReviewAnswer.self, from: answer).status?.allowed ?? false
        } catch {
            throw KubeError(.decoding, "SubjectAccessReview answer: \(LenientObject<String>.describe(error))")
        }
    }
}
