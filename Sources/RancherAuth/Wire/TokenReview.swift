/// The two `authentication.k8s.io` versions kube-apiserver speaks to token webhooks
/// (`--authentication-token-webhook-version`, default v1beta1). The answer must be in the
/// request's version: answering in the other fails in the apiserver with "unknown conversion".
public enum TokenReviewAPIVersion: String, Sendable, Hashable, CaseIterable {
    case v1 = "authentication.k8s.io/v1"
    case v1beta1 = "authentication.k8s.io/v1beta1"
}

/// What the service needs from a `TokenReview` request.
public struct TokenReviewRequest: Sendable, Hashable {
    public var apiVersion: TokenReviewAPIVersion
    public var token: String

    public init(apiVersion: TokenReviewAPIVersion, token: String) {
        self.apiVersion = apiVersion
        self.token = token
    }
}

/// Why a request body is not a usable `TokenReview` (answered `400`). Messages never quote
/// the request: it carries a credential.
public struct TokenReviewDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable, CaseIterable {
        case invalidJSON = "invalid_json"
        case notAnObject = "not_an_object"
        case wrongType = "wrong_type"
        case tooDeep = "too_deep"
        case wrongKind = "wrong_kind"
        case missingToken = "missing_token"
        case unsupportedAPIVersion = "unsupported_api_version"
    }

    public let code: Code
    public let message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// Renders `TokenReview` answers. Success bodies are rendered once per user and version when
/// records change; refusal bodies once per reason and version.
public enum TokenReviewResponse {
    /// `{"apiVersion":…,"kind":"TokenReview","status":{"authenticated":true,"user":{"username":…,"groups":[…]}}}`,
    /// the Go service's field order, with `groups` omitted when empty.
    public static func authenticatedBody(
        apiVersion: TokenReviewAPIVersion, username: String, groups: [String]
    ) -> [UInt8] {
        prefix(apiVersion) + authenticatedBodyRest(username: username, groups: groups)
    }

    /// `{"apiVersion":…,"kind":"TokenReview",` for each version, rendered once.
    public static func prefix(_ apiVersion: TokenReviewAPIVersion) -> [UInt8] {
        apiVersion == .v1 ? prefixV1 : prefixV1beta1
    }

    private static let prefixV1: [UInt8] = {
        var bytes: [UInt8] = []
        appendPrefix(.v1, to: &bytes)
        return bytes
    }()

    private static let prefixV1beta1: [UInt8] = {
        var bytes: [UInt8] = []
        appendPrefix(.v1beta1, to: &bytes)
        return bytes
    }()

    /// A success answer after its ``prefix(_:)``: `"status":{…}}`.
    public static func authenticatedBodyRest(username: String, groups: [String]) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(64 + username.utf8.count + groups.reduce(0) { $0 + $1.utf8.count + 3 })
        JSONWriter.appendRaw(#""status":{"authenticated":true,"user":{"username":"#, to: &body)
        JSONWriter.appendString(username, to: &body)
        if !groups.isEmpty {
            JSONWriter.appendRaw(#","groups":"#, to: &body)
            JSONWriter.appendStringArray(groups, to: &body)
        }
        JSONWriter.appendRaw("}}}", to: &body)
        // Kept by every user record: no spare capacity (up to a third of the bytes otherwise).
        return body.withoutSpareCapacity
    }

    /// `authenticated:false`, with `status.error` when given. kube-apiserver never caches a refusal
    /// that carries an error, and caches a bare one for the webhook cache TTL.
    public static func refusedBody(apiVersion: TokenReviewAPIVersion, error: String?) -> [UInt8] {
        var body: [UInt8] = []
        appendPrefix(apiVersion, to: &body)
        JSONWriter.appendRaw(#""status":{"authenticated":false"#, to: &body)
        if let error {
            JSONWriter.appendRaw(#","error":"#, to: &body)
            JSONWriter.appendString(error, to: &body)
        }
        JSONWriter.appendRaw("}}", to: &body)
        return body
    }

    private static func appendPrefix(_ apiVersion: TokenReviewAPIVersion, to body: inout [UInt8]) {
        JSONWriter.appendRaw(#"{"apiVersion":"#, to: &body)
        JSONWriter.appendString(apiVersion.rawValue, to: &body)
        JSONWriter.appendRaw(#","kind":"TokenReview","#, to: &body)
    }
}
