import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import KubeClient
import RancherAuth
import Testing

@Suite("Proxy request policy")
struct ProxyRequestPolicyTests {
    typealias Headers = ProxyRequestPolicy.Headers

    struct FramingCase: CustomTestStringConvertible, Sendable {
        var name: String
        var headers: [(String, String)]
        var refused: Bool
        var testDescription: String { name }
    }

    static let framing: [FramingCase] = [
        FramingCase(name: "Content-Length alone", headers: [("Content-Length", "10")], refused: false),
        FramingCase(name: "chunked alone", headers: [("Transfer-Encoding", "Chunked")], refused: false),
        FramingCase(name: "the same length twice (leading zeros)", headers: [("Content-Length", "10"), ("content-length", "010")], refused: false),
        FramingCase(
            name: "Content-Length and Transfer-Encoding", headers: [("Content-Length", "10"), ("Transfer-Encoding", "chunked")], refused: true),
        FramingCase(name: "two different lengths", headers: [("Content-Length", "10"), ("Content-Length", "11")], refused: true),
        FramingCase(name: "a list of lengths", headers: [("Content-Length", "10, 11")], refused: true),
        FramingCase(name: "a length that is not a number", headers: [("Content-Length", "+10")], refused: true),
        FramingCase(name: "an empty length", headers: [("Content-Length", "")], refused: true),
        FramingCase(name: "a coding before chunked", headers: [("Transfer-Encoding", "gzip, chunked")], refused: true),
        FramingCase(name: "chunked twice", headers: [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")], refused: true),
        FramingCase(name: "a line break in a value", headers: [("X-A", "1\r\nContent-Length: 5")], refused: true),
    ]

    struct UpstreamFramingCase: CustomTestStringConvertible, Sendable {
        var name: String
        var method = "GET"
        var completeBodyLength: Int?
        var transferEncoding = false
        var upgrade = false
        var http2 = false
        var expected: ProxyRequestPolicy.UpstreamFraming
        var testDescription: String { name }
    }

    static let upstreamFramings: [UpstreamFramingCase] = [
        UpstreamFramingCase(name: "a GET, complete, no body", completeBodyLength: 0, expected: .none),
        UpstreamFramingCase(
            name: "a POST, complete, empty body: an explicit length 0", method: "POST", completeBodyLength: 0, expected: .contentLength(0)),
        UpstreamFramingCase(name: "a POST, complete: its length", method: "POST", completeBodyLength: 42, expected: .contentLength(42)),
        UpstreamFramingCase(name: "a DELETE with a body, complete: its length", method: "DELETE", completeBodyLength: 7, expected: .contentLength(7)),
        UpstreamFramingCase(name: "a POST still arriving: chunked", method: "POST", expected: .chunked),
        UpstreamFramingCase(name: "a GET still arriving, no body announced: nothing", expected: .none),
        UpstreamFramingCase(name: "a GET still arriving with Transfer-Encoding: chunked", transferEncoding: true, expected: .chunked),
        UpstreamFramingCase(name: "an HTTP/2 GET still arriving (no framing of its own): chunked", http2: true, expected: .chunked),
        UpstreamFramingCase(name: "an upgrade request (exec): nothing, its bytes are the other protocol's", upgrade: true, expected: .none),
        UpstreamFramingCase(name: "an upgrade with a POST method: still nothing", method: "POST", upgrade: true, expected: .none),
    ]

    @Test("The request sent upstream carries framing the upstream can follow", arguments: upstreamFramings)
    func upstreamFraming(_ testCase: UpstreamFramingCase) {
        let framing = ProxyRequestPolicy.upstreamFraming(
            method: testCase.method, completeBodyLength: testCase.completeBodyLength, clientSentTransferEncoding: testCase.transferEncoding,
            isUpgrade: testCase.upgrade, isHTTP2: testCase.http2)
        #expect(framing == testCase.expected)
    }

    @Test("Request-smuggling shapes are refused, ordinary framing is not", arguments: framing)
    func framingProblems(_ testCase: FramingCase) {
        #expect((ProxyRequestPolicy.framingProblem(testCase.headers.map { (name: $0.0, value: $0.1) }) != nil) == testCase.refused)
    }

    static let credentialQueries: [(uri: String, refused: Bool)] = [
        ("/api/v1/namespaces/x/configmaps?access_token=abc:def", true),
        ("/api/v1/pods?watch=1&access_token=abc", true),
        ("/api/v1/pods?ACCESS_TOKEN=abc", true),
        ("/api/v1/pods?Access_Token", true),
        ("/api/v1/pods?access%5Ftoken=abc", true),
        ("/api/v1/pods?%61%63%63%65%73%73%5f%74%6f%6b%65%6e=abc", true),
        ("/api/v1/pods?x=1;access_token=abc", true),
        ("/api/v1/pods?access_token=", true),
        ("/api/v1/pods?a=1#&access_token=abc", true),
        ("/api/v1/pods", false),
        ("/api/v1/pods?labelSelector=access_token%3Dabc", false),
        ("/api/v1/namespaces/access_token/pods", false),
        ("/api/v1/pods?access_tokens=abc", false),
        ("/api/v1/pods?access+token=abc", false),
        ("/api/v1/pods?access%ZZtoken=abc", false),
        ("/api/v1/pods?%2561ccess_token=abc", false),
        ("?", false),
    ]

    @Test("A query naming access_token (any case, percent-encoded, after ; or &) is refused; values and paths are not names")
    func credentialInQuery() {
        for (uri, refused) in Self.credentialQueries {
            #expect(ProxyRequestPolicy.queryCarriesCredential(uri) == refused, "\(uri)")
        }
    }

    static let bearerEntry = ProxyRequestPolicy.webSocketBearerPrefix + Base64URL.encode(Array("rancher-token:secret".utf8))
    static let upgrade: Headers = [(name: "Connection", value: "Upgrade"), (name: "Upgrade", value: "websocket")]

    @Test("The credential: Authorization or the WebSocket bearer entry, never both, never two")
    func credentials() {
        #expect(ProxyRequestPolicy.credential([]) == .none)
        #expect(ProxyRequestPolicy.credential([(name: "authorization", value: "bearer  abc:def")]) == .bearer("abc:def", from: .authorization))
        #expect(ProxyRequestPolicy.credential([(name: "Authorization", value: "Basic dTpw")]) == .otherScheme)
        if case .invalid = ProxyRequestPolicy.credential([(name: "Authorization", value: "Bearer a"), (name: "Authorization", value: "Bearer b")]) {
        } else {
            Issue.record("two Authorization headers must be refused")
        }
        let protocols = (name: "Sec-WebSocket-Protocol", value: "v5.channel.k8s.io, \(Self.bearerEntry)")
        #expect(ProxyRequestPolicy.credential(Self.upgrade + [protocols]) == .bearer("rancher-token:secret", from: .webSocketProtocol))
        // Outside a WebSocket upgrade the entry means nothing (as in kube-apiserver).
        #expect(ProxyRequestPolicy.credential([protocols]) == .none)
        for headers: Headers in [
            Self.upgrade + [protocols, (name: "Authorization", value: "Bearer other")],
            Self.upgrade + [(name: "Sec-WebSocket-Protocol", value: "\(Self.bearerEntry), \(Self.bearerEntry)")],
            Self.upgrade + [(name: "Sec-WebSocket-Protocol", value: ProxyRequestPolicy.webSocketBearerPrefix + "not*base64")],
        ] {
            if case .invalid = ProxyRequestPolicy.credential(headers) {} else { Issue.record("must be refused: \(headers)") }
        }
    }

    @Test("Impersonation requests are read as kube-apiserver reads them")
    func impersonationRequests() {
        #expect(ProxyRequestPolicy.impersonation([(name: "Accept", value: "*/*")]) == .none)
        #expect(
            ProxyRequestPolicy.impersonation([
                (name: "Impersonate-User", value: "bob"), (name: "impersonate-group", value: "devs"), (name: "Impersonate-Group", value: "ops"),
                (name: "Impersonate-Uid", value: "42"), (name: "Impersonate-Extra-Scopes%2Fx", value: "a"),
                (name: "Impersonate-Extra-scopes%2Fx", value: "b"),
            ]) == .requested(.init(user: "bob", groups: ["devs", "ops"], uid: "42", extras: ["scopes/x": ["a", "b"]])))
        for headers: Headers in [
            [(name: "Impersonate-Group", value: "system:masters")],
            [(name: "Impersonate-User", value: "a"), (name: "Impersonate-User", value: "b")],
            [(name: "Impersonate-User", value: "a"), (name: "Impersonate-Uid", value: "1"), (name: "Impersonate-Uid", value: "2")],
            [(name: "Impersonate-Foo", value: "x")],
        ] {
            if case .invalid = ProxyRequestPolicy.impersonation(headers) {} else { Issue.record("must be refused: \(headers)") }
        }
    }

    static let client: Headers = [
        (name: "Host", value: "proxy"), (name: "Authorization", value: "Bearer kubeconfig-u-1:rancher-secret"),
        (name: "Impersonate-User", value: "system:admin"), (name: "Impersonate-Group", value: "system:masters"),
        (name: "Connection", value: "keep-alive, X-Hop"), (name: "X-Hop", value: "1"), (name: "Keep-Alive", value: "timeout=5"),
        (name: "TE", value: "trailers"), (name: "Proxy-Authorization", value: "Basic x"), (name: "X-Forwarded-For", value: "10.0.0.1"),
        (name: "Accept", value: "application/json"),
    ]

    @Test("Impersonating a Rancher user: no Rancher token, no client Impersonate-*, no hop-by-hop; the proxy's credential and the user's identity")
    func impersonatingHeaders() {
        let identity = ProxyRequestPolicy.Impersonation(user: "u-1", groups: ["github_org://1", "local://g"])
        let upstream = ProxyRequestPolicy.upstreamHeaders(
            Self.client, identity: .impersonating(identity, proxyToken: "proxy-sa-token"), clientAddress: "192.0.2.7")
        let text = upstream.map { "\($0.name): \($0.value)" }
        #expect(!text.contains { $0.contains("rancher-secret") || $0.contains("system:admin") || $0.contains("system:masters") })
        #expect(!upstream.contains { ["connection", "keep-alive", "te", "x-hop", "proxy-authorization"].contains($0.name.lowercased()) })
        #expect(text.filter { $0.lowercased().hasPrefix("authorization:") } == ["Authorization: Bearer proxy-sa-token"])
        #expect(
            text.filter { $0.hasPrefix("Impersonate-") } == [
                "Impersonate-User: u-1", "Impersonate-Group: github_org://1", "Impersonate-Group: local://g",
            ])
        #expect(text.contains("X-Forwarded-For: 10.0.0.1, 192.0.2.7"))
        #expect(text.contains("Accept: application/json") && text.contains("Host: proxy"))
    }

    @Test("Pass-through: the client's own credential and impersonation, nothing of the proxy's")
    func passThroughHeaders() {
        let upstream = ProxyRequestPolicy.upstreamHeaders(Self.client, identity: .passThrough, clientAddress: "192.0.2.7")
        let text = upstream.map { "\($0.name): \($0.value)" }
        #expect(text.contains("Authorization: Bearer kubeconfig-u-1:rancher-secret"))
        #expect(text.contains("Impersonate-User: system:admin"))
        #expect(!text.contains { $0.contains("proxy") && $0.lowercased().hasPrefix("authorization") })
        #expect(!upstream.contains { ["connection", "keep-alive", "te", "x-hop", "proxy-authorization"].contains($0.name.lowercased()) })
    }

    @Test("A Connection header naming more headers than are searched in order: the same headers go, in any case")
    func manyConnectionNames() {
        let names = (0..<40).map { "X-Named-\($0)" }
        let client: Headers =
            [(name: "Connection", value: names.joined(separator: ", "))] + names.map { (name: $0.uppercased(), value: "1") }
            + [(name: "X-Named-40", value: "kept"), (name: "Accept", value: "*/*")]
        let upstream = ProxyRequestPolicy.upstreamHeaders(client, identity: .passThrough, clientAddress: "192.0.2.7")
        #expect(upstream.map(\.name) == ["X-Named-40", "Accept", "X-Forwarded-For"])
    }

    @Test("Connection names are compared byte for byte in any ASCII case, as Go's reverse proxy does: no Unicode trimming or folding")
    func connectionNamesByBytes() {
        for extra in [[], (0..<10).map { "x-pad-\($0)" }] {
            let value = (["x-a", "X-\u{212A}", "\u{A0}x-b", "\u{E9}t\u{E9}"] + extra).joined(separator: ", ")
            let client: Headers = [
                (name: "Connection", value: value), (name: "X-A", value: "1"), (name: "X-K", value: "2"), (name: "x-b", value: "3"),
                (name: "\u{C9}T\u{C9}", value: "4"), (name: "\u{E9}t\u{E9}", value: "5"),
            ]
            let upstream = ProxyRequestPolicy.upstreamHeaders(client, identity: .passThrough, clientAddress: "192.0.2.7")
            // The Kelvin sign is not K, a no-break space is not trimmed, É is not é: only X-A and été go.
            #expect(upstream.map(\.name) == ["X-K", "x-b", "\u{C9}T\u{C9}", "X-Forwarded-For"], "\(extra.count) more names")
        }
    }

    @Test("Upgrades keep Connection: Upgrade and Upgrade; the WebSocket bearer entry is removed when impersonating")
    func upgradeHeaders() {
        let headers: Headers =
            Self.upgrade + [
                (name: "Sec-WebSocket-Protocol", value: "v5.channel.k8s.io, \(Self.bearerEntry)"), (name: "Sec-WebSocket-Key", value: "k"),
            ]
        let upstream = ProxyRequestPolicy.upstreamHeaders(
            headers, identity: .impersonating(.init(user: "u-1"), proxyToken: "p"), clientAddress: "192.0.2.7")
        let text = upstream.map { "\($0.name): \($0.value)" }
        #expect(text.contains("Connection: Upgrade") && text.contains("Upgrade: websocket") && text.contains("Sec-WebSocket-Key: k"))
        #expect(text.contains("Sec-WebSocket-Protocol: v5.channel.k8s.io"))
        #expect(!text.contains { $0.contains(ProxyRequestPolicy.webSocketBearerPrefix) })
        // Passed through: the client's own credential on a WebSocket upgrade, and nowhere else.
        let passThrough = ProxyRequestPolicy.upstreamHeaders(headers, identity: .passThrough, clientAddress: "10.0.0.9").map {
            "\($0.name): \($0.value)"
        }
        #expect(passThrough.contains { $0.contains(ProxyRequestPolicy.webSocketBearerPrefix) })
        let spdy = headers.map { $0.name == "Upgrade" ? (name: "Upgrade", value: "SPDY/3.1") : $0 }
        let notWebSocket = ProxyRequestPolicy.upstreamHeaders(spdy, identity: .passThrough, clientAddress: "10.0.0.9").map {
            "\($0.name): \($0.value)"
        }
        #expect(!notWebSocket.contains { $0.contains(ProxyRequestPolicy.webSocketBearerPrefix) })
        #expect(notWebSocket.contains("Sec-WebSocket-Protocol: v5.channel.k8s.io"))
    }

    @Test("An impersonation a SubjectAccessReview allowed is sent from the checked values")
    func approvedImpersonation() {
        let approved = ProxyRequestPolicy.Impersonation(user: "bob", groups: ["devs"], uid: "42", extras: ["scopes/x": ["a"]])
        let upstream = ProxyRequestPolicy.upstreamHeaders(
            [(name: "Impersonate-User", value: "bob"), (name: "Impersonate-Extra-evil", value: "x")],
            identity: .impersonating(approved, proxyToken: "p"), clientAddress: "192.0.2.7")
        #expect(
            upstream.filter { $0.name.hasPrefix("Impersonate-") }.map { "\($0.name): \($0.value)" } == [
                "Impersonate-User: bob", "Impersonate-Group: devs", "Impersonate-Uid: 42", "Impersonate-Extra-scopes%2Fx: a",
            ])
    }

    @Test("An impersonation becomes the SubjectAccessReviews kube-apiserver would make")
    func impersonationChecks() {
        let checks = ProxyRequestPolicy.impersonationChecks(
            .init(user: "bob", groups: ["devs", "ops"], uid: "42", extras: ["scopes": ["a", "b"]]))
        #expect(
            checks == [
                ResourceAttributes(verb: "impersonate", resource: "users", name: "bob"),
                ResourceAttributes(verb: "impersonate", resource: "groups", name: "devs"),
                ResourceAttributes(verb: "impersonate", resource: "groups", name: "ops"),
                ResourceAttributes(verb: "impersonate", group: "authentication.k8s.io", resource: "uids", name: "42"),
                ResourceAttributes(verb: "impersonate", group: "authentication.k8s.io", resource: "userextras/scopes", name: "a"),
                ResourceAttributes(verb: "impersonate", group: "authentication.k8s.io", resource: "userextras/scopes", name: "b"),
            ])
        #expect(
            ProxyRequestPolicy.impersonationChecks(.init(user: "system:serviceaccount:kube-system:deployer")) == [
                ResourceAttributes(verb: "impersonate", resource: "serviceaccounts", namespace: "kube-system", name: "deployer")
            ])
    }
}

@Suite("Log fields from clients")
struct LogFieldTests {
    @Test("A client-chosen value is cut to its bound at a character boundary, the cut said; short values stay as they are")
    func bounded() {
        #expect(AuditLog.bounded("/api/v1/pods") == "/api/v1/pods")
        let long = "/api/" + String(repeating: "é", count: 600)
        let cut = AuditLog.bounded(long)
        #expect(cut.hasPrefix("/api/é") && cut.hasSuffix("…(1205 bytes)"))
        #expect(cut.utf8.count <= 512 + "…(1205 bytes)".utf8.count)
        #expect(AuditLog.bounded(String(repeating: "a", count: 300), to: 253).utf8.count == 253 + "…(300 bytes)".utf8.count)
    }
}
