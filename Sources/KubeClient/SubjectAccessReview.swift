import Foundation

/// What is asked of the authorizer: may this user do this to this resource?
public struct ResourceAttributes: Codable, Sendable, Hashable {
    public var verb: String
    public var group: String
    public var resource: String
    public var namespace: String?
    public var name: String?

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
        let body = ReviewBody(
            spec: .init(user: user, groups: groups, uid: uid, extra: extra.isEmpty ? nil : extra, resourceAttributes: attributes))
        let encoded: Data
        do {
            encoded = try JSONEncoder().encode(body)
        } catch {
            throw KubeError(.decoding, "SubjectAccessReview cannot be encoded")
        }
        let answer = try await post("/apis/authorization.k8s.io/v1/subjectaccessreviews", body: encoded)
        return try decode(ReviewAnswer.self, answer).status?.allowed ?? false
    }
}
