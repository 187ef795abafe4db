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

    static func response(_ status: HTTPResponseStatus, _ headers: [(String, String)] = []) -> HTTPResponseHead {
        HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders(headers))
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

        guard
            case .write(let clientHead) = exchange.responseHead(
                Self.response(.ok, [("Keep-Alive", "timeout=5"), ("Content-Length", "2")]), quiescing: false)
        else { throw Failure("the response head is not written") }
        #expect(!clientHead.headers.contains(name: "keep-alive") && !clientHead.headers.contains(name: "connection"))
        let written = exchange.responseBody(byteCount: 2)
        #expect(written)
        guard case .writeEnd(let finish) = exchange.responseEnd() else { throw Failure("no end") }
        #expect(finish.reuseUpstream && finish.keepClient)
        #expect(finish.audit?.status == 200 && finish.audit?.bytes == 2 && finish.audit?.caller.user == "u-abc12")
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
        let written = streaming.responseBody(byteCount: 10)
        #expect(written)
        let audit = streaming.clientClosed()
        #expect(audit?.status == 200 && audit?.bytes == 10)
        let writtenAfter = streaming.responseBody(byteCount: 1)
        #expect(!writtenAfter, "nothing is written after the client left")
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
        #expect(response.status == .switchingProtocols && audit?.status == 101 && accepted.state == .upgraded)

        var declined = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&declined, [upgrade, .end(nil)])
        guard case .write(let written) = declined.responseHead(Self.response(.forbidden), quiescing: false) else { throw Failure("not written") }
        #expect(written.headers["connection"] == ["close"])
        guard case .writeEnd(let finish) = declined.responseEnd() else { throw Failure("no end") }
        #expect(!finish.reuseUpstream && !finish.keepClient)
    }

    @Test("The upstream answers before the body ended (an early 413): neither connection carries another request")
    func earlyUpstreamAnswer() throws {
        var exchange = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&exchange, [Self.request(.POST)])
        _ = exchange.responseHead(Self.response(.payloadTooLarge), quiescing: false)
        guard case .writeEnd(let finish) = exchange.responseEnd() else { throw Failure("no end") }
        #expect(!finish.reuseUpstream && !finish.keepClient && finish.audit?.status == 413)
    }

    @Test("While the service drains, a forwarded response is marked Connection: close and ends the connection")
    func quiescing() throws {
        var exchange = ProxyExchange(isHTTP2: false)
        _ = try Self.forwarding(&exchange, [Self.request(), .end(nil)])
        guard case .write(let head) = exchange.responseHead(Self.response(.ok), quiescing: true) else { throw Failure("not written") }
        #expect(head.headers["connection"] == ["close"])
        guard case .writeEnd(let finish) = exchange.responseEnd() else { throw Failure("no end") }
        #expect(!finish.keepClient && finish.reuseUpstream)
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
