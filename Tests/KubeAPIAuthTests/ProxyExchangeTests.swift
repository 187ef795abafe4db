import NIOCore
import NIOHTTP1
import Testing

@testable import KubeAPIAuthCore
@testable import KubeAPIAuthHTTP
@testable import KubeAPIAuthProxy

/// One exchange of the proxy as a value: events in, actions out, no channel and no clock (the
/// instants are made up). The handler that translates it is tested in `ProxyStreamHandlerTests`.
@Suite("The proxy's exchange as a state machine (ProxyExchange)")
struct ProxyExchangeTests {
    static let now = ContinuousClock.now
    static let forwarded = ProxyDoor.Route.forward(
        HTTPHeaders([("authorization", "Bearer proxy-token"), ("impersonate-user", "u-abc12")]),
        ProxyDoor.Caller(route: .impersonated, user: "u-abc12"))
    static let refused = ProxyDoor.Route.answer(
        .status(.unauthorized, reason: "Unauthorized", message: "Unauthorized"), ProxyDoor.Caller(route: .answered))

    static func request(_ method: HTTPMethod = .GET, _ uri: String = "/api", headers: [(String, String)] = []) -> HTTPServerRequestPart {
        .head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers)))
    }

    static func body(_ text: String) -> HTTPServerRequestPart { .body(ByteBuffer(string: text)) }

    /// An upstream response head, read from its bytes as the upstream connection reads it.
    static func response(
        _ status: HTTPResponseStatus, _ headers: [(String, String)] = [("Content-Length", "0")], toHEAD: Bool = false
    ) -> HTTPResponseFraming.Head {
        var text = "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        return try! HTTPResponseFraming.parseHead(
            ByteBuffer(string: text + "\r\n"), toHEAD: toHEAD, upgradeRequested: status == .switchingProtocols)
    }

    /// The head a client is sent, read back from its bytes (HTTP/1.1) or as it is (HTTP/2).
    static func written(_ action: ProxyExchange.ResponseHeadAction) throws -> (status: Int, headers: HTTPHeaders, bytes: String) {
        switch action {
        case .write(.bytes(let bytes)):
            let head = try HTTPResponseFraming.parseHead(bytes, toHEAD: false, upgradeRequested: true)
            return (head.status, head.headers, String(buffer: bytes))
        case .write(.parts(let head)):
            return (Int(head.status.code), head.headers, "")
        case .none, .awaitUpgrade:
            throw Failure("the response head is not written")
        }
    }

    /// An exchange taken to `forwarding` with `parts` of its request (the head first), returning what went upstream.
    static func forwarding(_ exchange: inout ProxyExchange, _ parts: [HTTPServerRequestPart]) throws -> ProxyExchange.Attached {
        for part in parts { _ = exchange.requestPart(part, now: now) }
        guard case .connect = exchange.routed(forwarded, upstreamAuthority: "10.0.0.1:6443") else {
            throw Failure("not forwarded")
        }
        #expect(exchange.state == .connecting)
        let sent = exchange.upstreamAttached()
        return try #require(sent)
    }

    @Test("A forwarded GET: head upstream with Host and no framing, the response's hop-by-hop headers dropped, one audit, the upstream reused")
    func forwardedGet() throws {
        var exchange = ProxyExchange(isHTTP2: false)
        guard case .route(let head) = exchange.requestPart(Self.request(.GET, "/api?limit=1"), now: Self.now) else {
            Issue.record("no route asked for")
            return
        }
        #expect(head.uri == "/api?limit=1" && exchange.state == .deciding)
        let sent = try Self.forwarding(&exchange, [.end(nil)])
        let upstreamHead = sent.head
        #expect(upstreamHead.headers["host"] == ["10.0.0.1:6443"])
        #expect(!upstreamHead.headers.contains(name: "content-length") && !upstreamHead.headers.contains(name: "transfer-encoding"))
        #expect(sent.buffered.count == 1, "the buffered end goes after the head")
        #expect(exchange.state == .forwarding)

        let clientHead = try Self.written(
            exchange.responseHead(
                Self.response(.ok, [("Keep-Alive", "timeout=5"), ("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("Content-Length", "2")]),
                quiescing: false))
        #expect(clientHead.bytes == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "hop-by-hop fields dropped, the length kept")
        guard case .write = exchange.responseBody(payload: 2) else { throw Failure("the body is not written") }
        guard case .writeEnd(let finish, .asUpstream) = exchange.responseEnd() else { throw Failure("no end") }
        #expect(finish.reuseUpstream && finish.keepClient)
        #expect(finish.audit?.status == 200 && finish.audit?.bytes == 2 && finish.audit?.caller.user == "u-abc12")

        // An upstream answering in HTTP/1.0: the client's head is in the client connection's version.
        var old = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&old, [Self.request(), .end(nil)])
        let oldHead = try HTTPResponseFraming.parseHead(
            ByteBuffer(string: "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"), toHEAD: false, upgradeRequested: false)
        let written = try Self.written(old.responseHead(oldHead, quiescing: false))
        #expect(written.bytes == "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        #expect(exchange.state == .idle)
        let audit = exchange.clientClosed()
        #expect(audit == nil, "an exchange is audited once")
    }

    @Test(
        "The upstream request's framing follows what had arrived when the decision came",
        arguments: [
            (parts: [ProxyExchangeTests.body("abc"), .end(nil)], expected: "content-length: 3"),
            (parts: [ProxyExchangeTests.body("abc")], expected: "transfer-encoding: chunked"),
        ] as [(parts: [HTTPServerRequestPart], expected: String)])
    func framingOfTheBufferedBody(parts: [HTTPServerRequestPart], expected: String) throws {
        var exchange = ProxyExchange(isHTTP2: false)
        let sent = try Self.forwarding(&exchange, [Self.request(.POST, "/api/v1/namespaces")] + parts)
        let head = sent.head
        let (name, value) = (String(expected.split(separator: ":")[0]), String(expected.split(separator: " ")[1]))
        #expect(head.headers[name] == [value], "\(head.headers)")
        #expect(sent.buffered.count == parts.count)
    }

    @Test("The body waits (reading pauses) while deciding and connecting; while forwarding it pauses only for an upstream that cannot take more")
    func readPauses() throws {
        var exchange = ProxyExchange(isHTTP2: false)
        #expect(!exchange.readPaused(upstreamWritable: false))
        _ = exchange.requestPart(Self.request(.POST), now: Self.now)
        #expect(exchange.readPaused(upstreamWritable: true))
        _ = try Self.forwarding(&exchange, [])
        #expect(!exchange.readPaused(upstreamWritable: true))
        #expect(exchange.readPaused(upstreamWritable: false))
        guard case .sendUpstream(.end) = exchange.requestPart(.end(nil), now: Self.now) else { throw Failure("the end is not forwarded") }
        #expect(!exchange.readPaused(upstreamWritable: false), "a complete request never pauses reading for the upstream")
    }

    @Test("Answered here with the whole request read: the connection stays; before the body ended: HTTP/1.1 closes, an HTTP/2 stream drops the rest")
    func answeredHere() throws {
        var complete = ProxyExchange(isHTTP2: false)
        _ = complete.requestPart(Self.request(), now: Self.now)
        _ = complete.requestPart(.end(nil), now: Self.now)
        guard case .answer(let answer) = complete.routed(Self.refused, upstreamAuthority: "u") else { throw Failure("not answered") }
        #expect(answer.head.status == .unauthorized && !answer.head.headers.contains(name: "connection"))
        #expect(answer.head.headers["content-length"] == [String(answer.body.count)])
        #expect(answer.finish?.keepClient == true && answer.finish?.audit?.status == 401)

        var early = ProxyExchange(isHTTP2: false)
        _ = early.requestPart(Self.request(.POST), now: Self.now)
        guard case .answer(let earlyAnswer) = early.routed(Self.refused, upstreamAuthority: "u") else { throw Failure("not answered") }
        #expect(earlyAnswer.head.headers["connection"] == ["close"])
        #expect(earlyAnswer.finish?.keepClient == false)

        var stream = ProxyExchange(isHTTP2: true)
        _ = stream.requestPart(Self.request(.POST), now: Self.now)
        guard case .answer(let streamAnswer) = stream.routed(Self.refused, upstreamAuthority: "u") else { throw Failure("not answered") }
        #expect(streamAnswer.finish == nil && !streamAnswer.head.headers.contains(name: "connection"))
        guard case .none = stream.requestPart(Self.body("dropped"), now: Self.now) else { throw Failure("the body went somewhere") }
        guard case .finish(let finish) = stream.requestPart(.end(nil), now: Self.now) else { throw Failure("the end does not finish") }
        #expect(finish.audit?.status == 401 && !finish.reuseUpstream)
    }

    @Test("A decision that comes after the exchange moved on (the client left) does nothing")
    func lateDecision() {
        var exchange = ProxyExchange(isHTTP2: false)
        _ = exchange.requestPart(Self.request(), now: Self.now)
        let audit = exchange.clientClosed()
        #expect(audit?.status == 0)
        guard case .none = exchange.routed(Self.forwarded, upstreamAuthority: "u") else {
            Issue.record("a late decision acted")
            return
        }
        let sent = exchange.upstreamAttached()
        #expect(sent == nil, "a connection made for a gone exchange is to be closed")
    }

    @Test("The upstream fails before the response's head: a 502 (the connection kept if the request was whole); after it: the client is cut")
    func upstreamFailures() throws {
        var before = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&before, [Self.request(), .end(nil)])
        guard case .answer(let answer) = before.upstreamFailed() else { throw Failure("no 502") }
        #expect(answer.head.status == .badGateway && answer.finish?.keepClient == true && answer.finish?.audit?.status == 502)

        var midBody = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&midBody, [Self.request(.POST)])
        guard case .answer(let midAnswer) = midBody.upstreamFailed() else { throw Failure("no 502") }
        #expect(midAnswer.finish?.keepClient == false, "an unread body would be taken for the next request")

        var after = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&after, [Self.request(), .end(nil)])
        _ = after.responseHead(Self.response(.ok), quiescing: false)
        guard case .cutClient(let audit) = after.upstreamFailed() else { throw Failure("not cut") }
        #expect(audit?.status == 200 && after.state == .closed)
        guard case .none = after.upstreamFailed() else { throw Failure("acted twice") }
    }

    @Test("The client goes away: a forwarded exchange with no response yet is audited 499, one under way with its status")
    func clientGone() throws {
        var waiting = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&waiting, [Self.request(), .end(nil)])
        let waitingAudit = waiting.clientClosed()
        #expect(waitingAudit?.status == 499)

        var streaming = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&streaming, [Self.request(), .end(nil)])
        _ = streaming.responseHead(Self.response(.ok), quiescing: false)
        guard case .write = streaming.responseBody(payload: 10) else { throw Failure("the body is not written") }
        let audit = streaming.clientClosed()
        #expect(audit?.status == 200 && audit?.bytes == 10)
        guard case .none = streaming.responseBody(payload: 1) else { throw Failure("written after the client left") }
    }

    @Test("An upgrade: the 101 is held until the response's end, then the exchange is spliced (audited once); a declined upgrade closes both sides")
    func upgrades() throws {
        let upgrade = Self.request(.GET, "/exec", headers: [("Connection", "Upgrade"), ("Upgrade", "websocket")])
        var accepted = ProxyExchange(isHTTP2: false)
        let sent = try Self.forwarding(&accepted, [upgrade, .end(nil)])
        let head = sent.head
        #expect(!head.headers.contains(name: "transfer-encoding") && !head.headers.contains(name: "content-length"))
        guard case .awaitUpgrade = accepted.responseHead(Self.response(.switchingProtocols, [("Upgrade", "websocket")]), quiescing: false)
        else { throw Failure("the 101 was written before its end") }
        guard case .upgrade(let response, let audit) = accepted.responseEnd() else { throw Failure("not spliced") }
        #expect(String(buffer: response) == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "the 101 as it came")
        #expect(audit?.status == 101 && accepted.state == .upgraded)

        var declined = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&declined, [upgrade, .end(nil)])
        let written = try Self.written(declined.responseHead(Self.response(.forbidden), quiescing: false))
        #expect(written.headers["connection"] == ["close"])
        guard case .writeEnd(let finish, _) = declined.responseEnd() else { throw Failure("no end") }
        #expect(!finish.reuseUpstream && !finish.keepClient)
    }

    @Test("The upstream answers before the body ended (an early 413): neither connection carries another request")
    func earlyUpstreamAnswer() throws {
        var exchange = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&exchange, [Self.request(.POST)])
        _ = exchange.responseHead(Self.response(.payloadTooLarge), quiescing: false)
        guard case .writeEnd(let finish, _) = exchange.responseEnd() else { throw Failure("no end") }
        #expect(!finish.reuseUpstream && !finish.keepClient && finish.audit?.status == 413)
    }

    @Test("While the service drains, a forwarded response is marked Connection: close and ends the connection")
    func quiescing() throws {
        var exchange = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&exchange, [Self.request(), .end(nil)])
        let head = try Self.written(exchange.responseHead(Self.response(.ok), quiescing: true))
        #expect(head.headers["connection"] == ["close"])
        guard case .writeEnd(let finish, _) = exchange.responseEnd() else { throw Failure("no end") }
        #expect(!finish.keepClient && finish.reuseUpstream)
    }

    @Test(
        "How a response's body reaches the client, by the upstream's framing and the client's protocol",
        arguments: [
            // (client, upstream framing field, expected client framing, field the client sees, client kept)
            ("1.1", ("Content-Length", "5"), ProxyExchange.ClientFraming.asUpstream, "content-length: 5", true),
            ("1.1", ("Transfer-Encoding", "chunked"), .asUpstream, "transfer-encoding: chunked", true),
            ("1.1", ("Server", "old"), .chunkedHere, "transfer-encoding: chunked", true),
            ("1.0", ("Content-Length", "5"), .asUpstream, "content-length: 5", true),
            ("1.0", ("Transfer-Encoding", "chunked"), .untilClose, "connection: close", false),
            ("1.0", ("Server", "old"), .untilClose, "connection: close", false),
            ("h2", ("Transfer-Encoding", "chunked"), .http2, "", true),
        ] as [(String, (String, String), ProxyExchange.ClientFraming, String, Bool)])
    func clientFraming(
        client: String, upstream: (String, String), expected: ProxyExchange.ClientFraming, field: String, kept: Bool
    ) throws {
        var exchange = ProxyExchange(isHTTP2: client == "h2")
        let version: HTTPVersion = client == "1.0" ? .http1_0 : .http1_1
        let headers: [(String, String)] = client == "1.0" ? [("Connection", "keep-alive")] : []
        let sent = try Self.forwarding(
            &exchange, [.head(HTTPRequestHead(version: version, method: .GET, uri: "/api", headers: HTTPHeaders(headers))), .end(nil)])
        #expect(sent.responseMode == (client == "1.1" ? .raw : .payload))
        let head = try Self.written(exchange.responseHead(Self.response(.ok, [upstream]), quiescing: false))
        if !field.isEmpty {
            let (name, value) = (String(field.split(separator: ":")[0]), String(field.split(separator: " ")[1]))
            #expect(head.headers[name] == [value], "\(head.bytes)")
        }
        #expect(!head.headers.contains(name: "transfer-encoding") || expected != .untilClose)
        #expect(
            head.headers.contains(name: "transfer-encoding")
                == (expected == .chunkedHere || upstream.0 == "Transfer-Encoding" && expected == .asUpstream))
        if case .none = exchange.responseBody(payload: 5) { throw Failure("the body is not written") }
        guard case .writeEnd(let finish, let framing) = exchange.responseEnd() else { throw Failure("no end") }
        #expect(framing == expected && finish.keepClient == kept)
    }

    @Test(
        "The client's head: the upstream's fields in order, less hop-by-hop ones and those its Connection names, in any case",
        arguments: [
            // (upstream fields, client framing, close, the head's field lines)
            ([("Server", "a"), ("X-One", "1")], ProxyExchange.ClientFraming.asUpstream, false, "Server: a\r\nX-One: 1\r\n"),
            (
                [("CONNECTION", "Keep-Alive"), ("keep-ALIVE", "timeout=5"), ("Te", "trailers"), ("Upgrade", "h2c"), ("Date", "d")],
                .asUpstream, false, "Date: d\r\n"
            ),
            (
                [("Connection", " x-a ,, X-B\t"), ("X-A", "1"), ("x-b", "2"), ("X-AB", "3"), ("Connection", "x-c"), ("X-C", "4")],
                .asUpstream, false, "X-AB: 3\r\n"
            ),
            (
                [("Proxy-Authenticate", "Basic"), ("Proxy-Connection", "keep-alive"), ("Trailer", "X-T"), ("Proxy-Authorization", "p")],
                .asUpstream, false, ""
            ),
            ([("Content-Length", "3"), ("Server", "a")], .asUpstream, true, "Content-Length: 3\r\nServer: a\r\nconnection: close\r\n"),
            ([("Transfer-Encoding", "chunked"), ("Server", "a")], .untilClose, true, "Server: a\r\nconnection: close\r\n"),
            ([("Server", "a")], .chunkedHere, false, "Server: a\r\ntransfer-encoding: chunked\r\n"),
            // More names than are searched in order: looked up by hash, with the same answers.
            (
                [("Connection", (0..<12).map { "x-n\($0)" }.joined(separator: ",") + ", X-Last"), ("X-N3", "1"), ("x-last", "2"), ("X-Kept", "3")],
                .asUpstream, false, "X-Kept: 3\r\n"
            ),
        ] as [([(String, String)], ProxyExchange.ClientFraming, Bool, String)])
    func clientHeadFields(upstream: [(String, String)], framing: ProxyExchange.ClientFraming, close: Bool, expected: String) {
        let head = ProxyResponseHeaders.clientHead(Self.response(.ok, upstream), framing: framing, close: close)
        #expect(String(buffer: head) == "HTTP/1.1 200 OK\r\n" + expected + "\r\n")
    }

    @Test("A request the decoder rejects is answered 400 only before any answer is under way")
    func malformed() throws {
        var idle = ProxyExchange(isHTTP2: false)
        #expect(idle.canAnswerMalformed)
        let answer = idle.answerMalformed(now: Self.now)
        #expect(answer.head.status == .badRequest && answer.head.headers["connection"] == ["close"])
        #expect(answer.finish?.keepClient == false && answer.finish?.audit?.uri == "-")

        var forwarding = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&forwarding, [Self.request(.POST)])
        #expect(!forwarding.canAnswerMalformed)
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
