import Foundation
import KubeClient
import RancherAuth
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// What the authenticating proxy may forward, decided from a request's headers alone: the
/// credential it carries, the impersonation it asks for, request-smuggling shapes, and the header
/// list that goes upstream. Pure (headers in, decision out) so that every rule is table-tested and
/// both HTTP/1.1 and HTTP/2 connections use the same one.
///
/// The rules that keep the proxy from widening anyone's rights (DESIGN.md decision 11):
/// - a client's `Impersonate-*` headers never go upstream as they came; an impersonation that a
///   SubjectAccessReview allowed is sent again from the checked values;
/// - a Rancher token (in `Authorization` or in the WebSocket bearer protocol entry) never goes
///   upstream: it is replaced by the proxy's own credential and the user's identity;
/// - a pass-through request keeps the client's own credential and gets nothing of the proxy's.
public enum ProxyRequestPolicy {
    public typealias Headers = [(name: String, value: String)]

    /// The WebSocket subprotocol prefix kube-apiserver reads a bearer token from (browsers cannot
    /// set `Authorization` on a WebSocket): `base64url.bearer.authorization.k8s.io.<base64url(token)>`.
    public static let webSocketBearerPrefix = "base64url.bearer.authorization.k8s.io."

    /// Headers that describe one connection and never cross a proxy (RFC 9110 §7.6.1), plus
    /// `Proxy-Connection` and `Keep-Alive` that some clients still send.
    static let hopByHop = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]

    /// Whether the header named `name` is hop-by-hop, or named by the message's `Connection`
    /// header (`named`: ``connectionNamed(_:)``).
    static func isHopByHop(_ name: String, named: ListedFieldNames) -> Bool {
        hopByHop.contains { ASCII.equalsIgnoringCase(name, $0) } || (!named.isEmpty && named.contains(name))
    }

    // MARK: - Smuggling

    /// A reason to refuse the request before anything is forwarded, when its framing could be
    /// read two ways (a front end and a back end disagreeing is how requests are smuggled).
    public static func framingProblem(_ headers: Headers) -> String? {
        var lengths: Set<String> = []
        var codings: [String] = []
        for (name, value) in headers {
            if value.utf8.contains(where: { $0 == 0 || $0 == 0x0A || $0 == 0x0D }) { return "control character in header \(name)" }
            if ASCII.equalsIgnoringCase(name, "content-length") {
                for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                    let length = part.trimmingCharacters(in: .whitespaces)
                    guard !length.isEmpty, length.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else {
                        return "Content-Length is not a number"
                    }
                    lengths.insert(String(length.drop { $0 == "0" }))
                }
            } else if ASCII.equalsIgnoringCase(name, "transfer-encoding") {
                codings += listElements(value)
            }
        }
        if lengths.count > 1 { return "Content-Length given more than once with different values" }
        if !codings.isEmpty {
            if !lengths.isEmpty { return "both Content-Length and Transfer-Encoding" }
            if codings != ["chunked"] { return "Transfer-Encoding other than chunked" }
        }
        return nil
    }

    // MARK: - Credential

    public enum CredentialSource: Sendable, Equatable {
        case authorization
        case webSocketProtocol
    }

    public enum Credential: Sendable, Equatable {
        /// No credential: anonymous (passed through as such).
        case none
        /// A bearer token: a Rancher token or an emergency token is decided by the proxy; any other
        /// (a service-account token) is passed through as the client's own.
        case bearer(String, from: CredentialSource)
        /// Another `Authorization` scheme (Basic): answered `401` by the door (kube-apiserver accepts
        /// only bearer tokens, and forwarding could only leak what is in it).
        case otherScheme
        /// Ambiguous or malformed: refused with 400 (two credentials, two bearer protocol entries).
        case invalid(String)
    }

    public static func credential(_ headers: Headers) -> Credential {
        let authorizations = values("authorization", in: headers)
        var protocolTokens: [String] = []
        if isWebSocketUpgrade(headers) {
            for entry in values("sec-websocket-protocol", in: headers).flatMap({ $0.split(separator: ",") }) {
                let trimmed = entry.trimmingCharacters(in: .whitespaces)
                guard trimmed.hasPrefix(webSocketBearerPrefix) else { continue }
                guard let decoded = Base64URL.decode(trimmed.utf8.dropFirst(webSocketBearerPrefix.utf8.count)),
                    let token = String(validating: decoded, as: UTF8.self), !token.isEmpty
                else { return .invalid("the WebSocket bearer protocol entry is not base64url") }
                protocolTokens.append(token)
            }
        }
        guard authorizations.count + protocolTokens.count <= 1 else {
            return .invalid("more than one credential (Authorization headers or WebSocket bearer entries)")
        }
        if let token = protocolTokens.first { return .bearer(token, from: .webSocketProtocol) }
        guard let authorization = authorizations.first else { return .none }
        guard let token = BearerAuthorization.token(authorization) else { return .otherScheme }
        return .bearer(token, from: .authorization)
    }

    // MARK: - Credentials in the URL

    /// Whether the request's query has an `access_token` parameter: its name compared in any case
    /// after one round of query decoding (`%XX`, `+` as a space), as Go's `url.ParseQuery` reads it,
    /// with `&` and `;` both taken as separators. Such a request is answered here and never
    /// forwarded: passed through, its query (a Rancher token in it) would reach kube-apiserver's
    /// audit log as the `requestURI`. The request-target has no fragment, so a `#` is query text.
    public static func queryCarriesCredential(_ uri: String) -> Bool {
        guard let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return false }
        let query = uri.utf8[uri.utf8.index(after: mark)...]
        for parameter in query.split(whereSeparator: { $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: ";") }) {
            let name = parameter.prefix { $0 != UInt8(ascii: "=") }
            // Longer than any spelling of the name, even fully percent-encoded: not it.
            guard name.count <= 3 * credentialParameter.utf8.count else { continue }
            guard let decoded = queryDecoded(name) else { continue }
            if decoded.count == credentialParameter.utf8.count,
                zip(decoded, credentialParameter.utf8).allSatisfy({ asciiLowercased($0) == $1 })
            {
                return true
            }
        }
        return false
    }

    static let credentialParameter = "access_token"

    /// One round of query decoding; `nil` for a malformed escape (Go drops such a parameter).
    static func queryDecoded(_ bytes: some Collection<UInt8>) -> [UInt8]? {
        var result: [UInt8] = []
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                result.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(ASCII.hexValue), let low = iterator.next().flatMap(ASCII.hexValue) else { return nil }
                result.append(high << 4 | low)
            default:
                result.append(byte)
            }
        }
        return result
    }

    private static func asciiLowercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 32 : byte
    }

    // MARK: - Impersonation

    /// What a client asked to act as (`kubectl --as`, `--as-group`, `--as-uid`, extras).
    public struct Impersonation: Sendable, Equatable {
        public var user: String?
        public var groups: [String] = []
        public var uid: String?
        /// `Impersonate-Extra-<key>`: the key lowercased and percent-decoded, as kube-apiserver reads it.
        public var extras: [String: [String]] = [:]

        public init(user: String? = nil, groups: [String] = [], uid: String? = nil, extras: [String: [String]] = [:]) {
            self.user = user
            self.groups = groups
            self.uid = uid
            self.extras = extras
        }
    }

    public enum ImpersonationRequest: Sendable, Equatable {
        case none
        case requested(Impersonation)
        /// kube-apiserver refuses these too (groups, uid or extras without a user; two users).
        case invalid(String)
    }

    public static func impersonation(_ headers: Headers) -> ImpersonationRequest {
        var request = Impersonation()
        var users: [String] = []
        var uids: [String] = []
        var any = false
        for (name, value) in headers {
            guard ASCII.hasPrefixIgnoringCase(name, "impersonate-") else { continue }
            let lower = name.lowercased()
            any = true
            switch lower {
            case "impersonate-user": users.append(value)
            case "impersonate-group": request.groups.append(value)
            case "impersonate-uid": uids.append(value)
            default:
                guard lower.hasPrefix("impersonate-extra-"), lower.count > "impersonate-extra-".count else {
                    return .invalid("unknown impersonation header \(name)")
                }
                let key = String(lower.dropFirst("impersonate-extra-".count))
                guard let decoded = key.removingPercentEncoding else { return .invalid("impersonation extra key \(key) is not percent-encoded") }
                request.extras[decoded, default: []].append(value)
            }
        }
        guard any else { return .none }
        guard users.count == 1, let user = users.first, !user.isEmpty else {
            return .invalid(users.count > 1 ? "more than one Impersonate-User" : "impersonation without Impersonate-User")
        }
        guard uids.count <= 1 else { return .invalid("more than one Impersonate-Uid") }
        request.user = user
        request.uid = uids.first
        return .requested(request)
    }

    /// The SubjectAccessReviews that must all allow an impersonation, as kube-apiserver checks it:
    /// `impersonate` on `users`, each of `groups`, `uids` (authentication.k8s.io) and
    /// `userextras/<key>` for each extra value. The proxy asks them for the authenticated Rancher
    /// user, so that `--as` works exactly where RBAC would let that user impersonate directly.
    public static func impersonationChecks(_ impersonation: Impersonation) -> [ResourceAttributes] {
        var checks: [ResourceAttributes] = []
        if let user = impersonation.user {
            let isServiceAccount = user.hasPrefix("system:serviceaccount:")
            if isServiceAccount, case let parts = user.split(separator: ":"), parts.count == 4 {
                // kube-apiserver checks a service account as that object: impersonate on serviceaccounts.
                checks.append(
                    ResourceAttributes(verb: "impersonate", resource: "serviceaccounts", namespace: String(parts[2]), name: String(parts[3])))
            } else {
                checks.append(ResourceAttributes(verb: "impersonate", resource: "users", name: user))
            }
        }
        for group in impersonation.groups { checks.append(ResourceAttributes(verb: "impersonate", resource: "groups", name: group)) }
        if let uid = impersonation.uid {
            checks.append(ResourceAttributes(verb: "impersonate", group: "authentication.k8s.io", resource: "uids", name: uid))
        }
        for key in impersonation.extras.keys.sorted() {
            for value in impersonation.extras[key]! {
                checks.append(ResourceAttributes(verb: "impersonate", group: "authentication.k8s.io", resource: "userextras/\(key)", name: value))
            }
        }
        return checks
    }

    // MARK: - Forwarding

    /// Who the upstream request is made as.
    public enum UpstreamIdentity: Sendable {
        /// The proxy's credential, impersonating this identity (a Rancher user, or an impersonation
        /// a SubjectAccessReview allowed). The client's credential is removed.
        case impersonating(Impersonation, proxyToken: String)
        /// The client's own credential (or none); nothing of the proxy's.
        case passThrough
    }

    /// The headers to send upstream: the client's, less hop-by-hop headers (and those its
    /// `Connection` names); when impersonating, less the client's credential and every
    /// `Impersonate-*`, plus the proxy's credential and the identity; `Connection: Upgrade` and
    /// `Upgrade` kept for upgrade requests; the client address appended to `X-Forwarded-For`.
    ///
    /// A pass-through request keeps its `Impersonate-*` headers: it goes up with the client's own
    /// credential, so kube-apiserver checks the client's own right to impersonate. WebSocket
    /// bearer entries go up only on a pass-through WebSocket upgrade (anywhere else they are no
    /// credential, and could only carry a Rancher token where it must not go).
    public static func upstreamHeaders(_ headers: Headers, identity: UpstreamIdentity, clientAddress: String) -> Headers {
        let upgrade = isUpgrade(headers) ? values("upgrade", in: headers).first : nil
        let webSocket = isWebSocketUpgrade(headers)
        let impersonating: Bool
        if case .impersonating = identity { impersonating = true } else { impersonating = false }
        let named = connectionNamed(headers)
        var forwardedFor: [String] = []
        var result: Headers = []
        result.reserveCapacity(headers.count + 4)
        for (name, value) in headers {
            if isHopByHop(name, named: named) { continue }
            if ASCII.equalsIgnoringCase(name, "x-forwarded-for") {
                forwardedFor.append(value)
                continue
            }
            if impersonating, ASCII.equalsIgnoringCase(name, "authorization") || ASCII.hasPrefixIgnoringCase(name, "impersonate-") {
                continue
            }
            // A bearer entry is a credential only on a WebSocket upgrade (as kube-apiserver reads
            // it); it goes upstream only as a pass-through client's own credential on one.
            if ASCII.equalsIgnoringCase(name, "sec-websocket-protocol"), impersonating || !webSocket {
                let kept = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.hasPrefix(webSocketBearerPrefix) }
                if !kept.isEmpty { result.append((name, kept.joined(separator: ", "))) }
                continue
            }
            result.append((name, value))
        }
        if let upgrade {
            result.append(("Connection", "Upgrade"))
            result.append(("Upgrade", upgrade))
        }
        if case .impersonating(let who, let proxyToken) = identity {
            result.append(("Authorization", "Bearer \(proxyToken)"))
            if let user = who.user { result.append(("Impersonate-User", user)) }
            for group in who.groups { result.append(("Impersonate-Group", group)) }
            if let uid = who.uid { result.append(("Impersonate-Uid", uid)) }
            for key in who.extras.keys.sorted() {
                let encoded = key.addingPercentEncoding(withAllowedCharacters: extraKeyCharacters) ?? key
                for value in who.extras[key]! { result.append(("Impersonate-Extra-\(encoded)", value)) }
            }
        }
        forwardedFor.append(clientAddress)
        result.append(("X-Forwarded-For", forwardedFor.joined(separator: ", ")))
        return result
    }

    // MARK: - Helpers

    /// The values of the headers named `lowercasedName` (in any case), in order.
    static func values(_ lowercasedName: String, in headers: Headers) -> [String] {
        headers.compactMap { ASCII.equalsIgnoringCase($0.name, lowercasedName) ? $0.value : nil }
    }

    /// The elements of a comma-separated header value, trimmed of whitespace and lowercased (empty
    /// elements between commas dropped; one of only spaces kept as ""). ASCII values, all of them
    /// in practice, take a path that allocates nothing for a short element; any other value is
    /// read as it always was (Foundation's trimming of every Unicode space, Unicode lowercasing).
    package static func listElements(_ value: String) -> [String] {
        guard ASCII.isASCII(value) else { return value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() } }
        var elements: [String] = []
        for element in value.utf8.split(separator: UInt8(ascii: ",")) {
            let trimmed = element.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            let end = trimmed.lastIndex { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }.map { trimmed.index(after: $0) }
            let bytes = trimmed[..<(end ?? trimmed.startIndex)]
            // Up to 15 bytes, the string is made in place (no allocation).
            elements.append(
                String(unsafeUninitializedCapacity: bytes.count) { buffer in
                    for (offset, byte) in bytes.enumerated() { buffer[offset] = ASCII.lowercased(byte) }
                    return bytes.count
                })
        }
        return elements
    }

    /// The names every `Connection` header of `headers` lists, each trimmed of spaces and tabs and
    /// compared byte for byte in any ASCII case, as Go's reverse proxy does: the headers they name
    /// are hop-by-hop for this message. A value with bytes outside ASCII is read the same way. It
    /// once went through Foundation's Unicode trimming and lowercasing (`listElements`), which
    /// matched names Go does not (the Kelvin sign as K) and made one such byte in a list of 2,900
    /// names cost 4.4 ms (`BENCH_PARTS=hostile bash bench/proxy`).
    package static func connectionNamed(_ headers: some Sequence<(name: String, value: String)>) -> ListedFieldNames {
        var named = ListedFieldNames()
        for (name, value) in headers where ASCII.equalsIgnoringCase(name, "connection") {
            // Read where it is (no slice of the value's string, which would retain it per
            // element): one small string per element, made when it is added.
            var value = value
            value.withUTF8 { utf8 in
                let raw = UnsafeRawBufferPointer(utf8)
                let commas = raw.reduce(0) { $1 == UInt8(ascii: ",") ? $0 + 1 : $0 }
                if commas >= ListedFieldNames.orderedLimit { named.reserveCapacity(commas + 1) }
                HTTPResponseFraming.forEachElement(raw, 0..<raw.count) { named.add(UnsafeRawBufferPointer(rebasing: raw[$0])) }
            }
        }
        return named
    }

    /// How the request sent upstream is framed, when its routed headers carry no `Content-Length`.
    public enum UpstreamFraming: Sendable, Equatable {
        /// Nothing to add: no body, or the upgrade's bytes follow the head.
        case none
        case contentLength(Int)
        case chunked
    }

    /// Framing the upstream's parser can follow, whatever the client's was (an HTTP/2 stream has
    /// none): a length when the whole body has arrived before forwarding (`completeBodyLength`),
    /// else chunked for a request that may have a body — a method that carries one, a client that
    /// said it sends one (`Transfer-Encoding`), any HTTP/2 stream — and nothing for an upgrade
    /// request (its bytes after the head are the other protocol's) or a bodyless method.
    public static func upstreamFraming(
        method: String, completeBodyLength: Int?, clientSentTransferEncoding: Bool, isUpgrade: Bool, isHTTP2: Bool
    ) -> UpstreamFraming {
        let bodyless = bodylessMethods.contains(method)
        if let length = completeBodyLength {
            return length > 0 || !bodyless ? .contentLength(length) : .none
        }
        if !isUpgrade, !bodyless || clientSentTransferEncoding || isHTTP2 { return .chunked }
        return .none
    }

    /// Methods that carry no body unless the client frames one.
    static let bodylessMethods: Set<String> = ["GET", "HEAD", "DELETE", "OPTIONS", "CONNECT", "TRACE"]

    /// `Connection: Upgrade` with an `Upgrade` header (SPDY/3.1 or WebSocket).
    public static func isUpgrade(_ headers: Headers) -> Bool {
        // Nearly every request has no `Upgrade` header: decided without reading `Connection`.
        headers.contains { ASCII.equalsIgnoringCase($0.name, "upgrade") } && connectionNamed(headers).contains("upgrade")
    }

    static func isWebSocketUpgrade(_ headers: Headers) -> Bool {
        isUpgrade(headers) && values("upgrade", in: headers).contains { $0.lowercased().contains("websocket") }
    }

    /// Header-name characters that need no escaping in an extra's key (RFC 7230 tchar less `%`).
    static let extraKeyCharacters: CharacterSet = {
        var set = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)..<Unicode.Scalar(128)))
        set.insert(charactersIn: "!#$&'*+-.^_`|~")
        return set
    }()
}
