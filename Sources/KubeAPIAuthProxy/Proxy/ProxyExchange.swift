import Foundation
import NIOCore
import NIOHTTP1
import RancherAuth
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// One exchange of the proxy — a client's request and the answer it gets — as a value: events in
/// (the client's request parts, the door's decision, the upstream connection and its response
/// parts, the client going away), actions out (what to send where, when the exchange is finished
/// and whether the upstream connection can be reused, what to audit). ``ProxyStreamHandler``
/// translates NIO's events into these calls and the actions into writes; every decision about the
/// exchange is made here and tested without channels (`ProxyExchangeTests`).
///
/// States: `idle` → (request head) `deciding` → (decision) `answered` or `connecting` →
/// (upstream attached) `forwarding` → (response end) `idle` again, or `upgraded` (a `101` to an
/// upgrade request: the connection becomes a byte splice), or `closed`.
///
/// Rules kept here:
/// - the request's body waits while the door decides and the upstream connection is made (reading
///   pauses, ``readPaused(upstreamWritable:)``); once forwarding, parts flow as they arrive;
/// - an answer given before the whole request arrived (the proxy's own, or the upstream's early
///   `413`/`401`) ends the client's HTTP/1.1 connection and never reuses the upstream one; an
///   HTTP/2 stream reads and drops the rest instead;
/// - an upgrade request's connections are never reused unless the upgrade happens (then both are
///   the splice's); the upstream's hop-by-hop response headers are dropped (``ProxyResponseHeaders``);
/// - the upstream failing before the response's head is a `502` to the client, after it a cut (the
///   client sees a truncated response, as the upstream cut it);
/// - each exchange is audited exactly once (`499` when the client left mid-response).
struct ProxyExchange {
    enum State: Equatable {
        case idle
        /// The door is deciding (a scrypt check or a SubjectAccessReview may be running).
        case deciding
        /// Forwarded: waiting for an upstream connection.
        case connecting
        /// Parts flow to and from the upstream connection.
        case forwarding
        /// Answered here; the rest of the request body is read and dropped.
        case answered
        /// Spliced as bytes; the HTTP handlers are gone.
        case upgraded
        case closed
    }

    /// What the audit line of a finished exchange says.
    struct Audit {
        var caller: ProxyDoor.Caller
        var method: HTTPMethod
        var uri: String
        var status: Int
        var bytes: Int
        var start: ContinuousClock.Instant
    }

    /// The exchange is over; the connection may carry the next one.
    struct Finish {
        /// The upstream connection may serve another request (else it is closed).
        var reuseUpstream: Bool
        /// The client's HTTP/1.1 connection stays open after this answer.
        var keepClient: Bool
        var audit: Audit?
    }

    /// An answer made by the proxy (an error, a refusal, a `400` for a malformed request).
    struct Answer {
        var head: HTTPResponseHead
        var body: [UInt8]
        /// Set when the answer ends the exchange at once (else the rest of the request is dropped
        /// until its end, which finishes it).
        var finish: Finish?
    }

    enum RequestAction {
        case none
        /// A request head: ask the door (``ProxyDoor/route(_:client:start:on:)``), then ``routed(_:upstreamAuthority:)``.
        case route(HTTPRequestHead)
        /// Forward a part upstream (flush after an end).
        case sendUpstream(HTTPClientRequestPart)
        /// The request of an exchange answered here ended: it is finished.
        case finish(Finish)
    }

    enum RoutedAction {
        /// The exchange moved on meanwhile (the client left, a malformed request was answered).
        case none
        case answer(Answer)
        /// Take an upstream connection (pooled or new), then ``upstreamAttached()``.
        case connect
    }

    enum UpstreamFailure {
        case none
        /// The response had started: close the client's connection, audit.
        case cutClient(Audit?)
        case answer(Answer)
    }

    /// A response head as it goes to the client: the bytes of an HTTP/1.1 connection, or the
    /// head of an HTTP/2 stream (which frames it anew).
    enum ClientHead {
        case bytes(ByteBuffer)
        case parts(HTTPResponseHead)
    }

    /// How the response's body goes to the client.
    enum ClientFraming: Equatable {
        /// As the upstream framed it (a length, chunks or no body): its bytes as they came.
        case asUpstream
        /// The upstream's body ends with its connection; the client gets it in chunks framed here.
        case chunkedHere
        /// An HTTP/1.0 client: the body's payload, ended by closing the connection.
        case untilClose
        /// An HTTP/2 stream: the body's payload in DATA frames.
        case http2
    }

    enum ResponseHeadAction {
        case none
        case write(ClientHead)
        /// A `101` to an upgrade request: spliced once the response's (empty) end has been read.
        case awaitUpgrade
    }

    enum ResponseBodyAction {
        case none
        /// Write the bytes as they are.
        case write
        /// Write them as one chunk (``ClientFraming/chunkedHere``).
        case writeChunk
    }

    enum ResponseEndAction {
        case none
        /// Write the response's end (the last chunk when chunked here, the end of an HTTP/2
        /// stream; nothing otherwise); then the exchange is finished.
        case writeEnd(Finish, ClientFraming)
        /// Hand the client the `101` (its bytes as the upstream sent them) and splice both connections.
        case upgrade(ByteBuffer, Audit?)
    }

    private(set) var state = State.idle
    /// An HTTP/2 stream (one exchange, no connection to keep or close) rather than an HTTP/1.1 connection.
    let isHTTP2: Bool
    private var head: HTTPRequestHead?
    /// What the door decided the exchange acts as (for the audit line and the sessions).
    private(set) var caller = ProxyDoor.Caller(route: .answered)
    /// The start of the exchange in progress (for the upstream's latency and the audit).
    private(set) var start = ContinuousClock.now
    /// The head to send upstream, from the door's decision until the upstream is attached.
    private var outgoing: HTTPRequestHead?
    /// Request parts that arrived while deciding or connecting.
    private var buffered: [HTTPServerRequestPart] = []
    private(set) var requestEnded = false
    private(set) var responseStarted = false
    private var status = 0
    private var bytes = 0
    private var isUpgradeRequest = false
    private var clientKeepAlive = true
    private var upstreamKeepAlive = true
    private var pendingUpgrade: ByteBuffer?
    private var clientIsHTTP10 = false
    private var clientFraming = ClientFraming.asUpstream

    init(isHTTP2: Bool) {
        self.isHTTP2 = isHTTP2
    }

    /// The request's path without its query, for log lines.
    var path: Substring { head?.uri.prefix(while: { $0 != "?" }) ?? "" }

    // MARK: The client's request

    /// `now` is read for a request's head only (the exchange's start).
    mutating func requestPart(_ part: HTTPServerRequestPart, now: @autoclosure () -> ContinuousClock.Instant) -> RequestAction {
        switch (state, part) {
        case (.idle, .head(let head)):
            begin(head, now: now())
            return .route(head)
        case (.idle, _):
            return .none  // parts of a request answered and closed
        case (.deciding, .head), (.connecting, .head), (.forwarding, .head), (.answered, .head):
            return .none  // cannot happen: a head after an incomplete request is a decoder error
        case (.deciding, let part), (.connecting, let part):
            if case .end = part { requestEnded = true }
            buffered.append(part)
            return .none
        case (.forwarding, .body(let body)):
            return .sendUpstream(.body(.byteBuffer(body)))
        case (.forwarding, .end(let trailers)):
            requestEnded = true
            return .sendUpstream(.end(trailers))
        case (.answered, .body):
            return .none
        case (.answered, .end):
            requestEnded = true
            return .finish(finish(reuseUpstream: false))
        case (.upgraded, _), (.closed, _):
            return .none
        }
    }

    private mutating func begin(_ head: HTTPRequestHead, now: ContinuousClock.Instant) {
        self.head = head
        start = now
        state = .deciding
        caller = ProxyDoor.Caller(route: .answered)
        requestEnded = false
        responseStarted = false
        status = 0
        bytes = 0
        buffered = []
        outgoing = nil
        upstreamKeepAlive = true
        clientKeepAlive = isHTTP2 || head.isKeepAlive
        clientIsHTTP10 = !isHTTP2 && head.version.minor == 0
        isUpgradeRequest =
            !isHTTP2 && head.headers.contains(name: "upgrade")
            && head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" }
    }

    /// Whether reading from the client pauses, for the exchange's own reasons: the body waits for
    /// the decision and the upstream connection, and for an upstream that cannot take more.
    func readPaused(upstreamWritable: @autoclosure () -> Bool) -> Bool {
        Self.readPaused(state: state, requestEnded: requestEnded, upstreamWritable: upstreamWritable())
    }

    /// ``readPaused(upstreamWritable:)`` from the two stored properties it reads: what the handler
    /// calls on every `read` (a method of the exchange, called on the handler's stored value,
    /// copies the whole value first).
    static func readPaused(state: State, requestEnded: Bool, upstreamWritable: @autoclosure () -> Bool) -> Bool {
        switch state {
        case .deciding, .connecting: return !requestEnded
        case .forwarding: return !requestEnded && !upstreamWritable()
        case .idle, .answered, .upgraded, .closed: return false
        }
    }

    // MARK: The door's decision

    mutating func routed(_ route: ProxyDoor.Route, upstreamAuthority: String) -> RoutedAction {
        guard state == .deciding, let head else { return .none }
        switch route {
        case .answer(let answer, let caller):
            self.caller = caller
            return .answer(self.answer(answer))
        case .forward(let headers, let caller):
            self.caller = caller
            state = .connecting
            outgoing = upstreamHead(head, headers: headers, authority: upstreamAuthority)
            return .connect
        }
    }

    /// The head sent upstream: the routed headers, `Host` naming the upstream, and framing that
    /// the encoder can follow (``ProxyRequestPolicy/upstreamFraming(method:completeBodyLength:clientSentTransferEncoding:isUpgrade:isHTTP2:)``).
    private func upstreamHead(_ head: HTTPRequestHead, headers: HTTPHeaders, authority: String) -> HTTPRequestHead {
        var headers = headers
        headers.replaceOrAdd(name: "host", value: authority)
        if !headers.contains(name: "content-length") {
            let length: Int? =
                requestEnded
                ? buffered.reduce(0) { total, part in
                    if case .body(let body) = part { return total + body.readableBytes }
                    return total
                } : nil
            let framing = ProxyRequestPolicy.upstreamFraming(
                method: head.method.rawValue, completeBodyLength: length,
                clientSentTransferEncoding: head.headers.contains(name: "transfer-encoding"),
                isUpgrade: isUpgradeRequest, isHTTP2: isHTTP2)
            switch framing {
            case .none: break
            case .contentLength(let length): headers.add(name: "content-length", value: String(length))
            case .chunked: headers.add(name: "transfer-encoding", value: "chunked")
            }
        }
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: headers)
    }

    // MARK: The upstream

    /// What to send on an upstream connection that is ready: the head, then the parts that
    /// arrived meanwhile (usually none: no array is made for them then).
    struct Attached {
        var head: HTTPRequestHead
        var buffered: [HTTPServerRequestPart]
        /// How the upstream's response is to be read.
        var toHEAD: Bool
        var upgradeRequested: Bool
        var responseMode: HTTPResponseFraming.Mode
    }

    /// An upstream connection is ready: what to send on it, or `nil` when the exchange no longer
    /// wants it (close it).
    mutating func upstreamAttached() -> Attached? {
        guard state == .connecting, let outgoing else { return nil }
        state = .forwarding
        self.outgoing = nil
        defer { buffered = [] }
        // An HTTP/1.1 client gets the body's bytes as the upstream framed them; an HTTP/2 stream
        // and an HTTP/1.0 client (which cannot read chunks) get the payload.
        return Attached(
            head: outgoing, buffered: buffered, toHEAD: outgoing.method == .HEAD, upgradeRequested: isUpgradeRequest,
            responseMode: isHTTP2 || clientIsHTTP10 ? .payload : .raw)
    }

    /// The upstream connection could not be made, or failed or closed before the response ended.
    mutating func upstreamFailed() -> UpstreamFailure {
        guard state == .forwarding || state == .connecting else { return .none }
        if responseStarted {
            state = .closed
            return .cutClient(takeAudit())
        }
        clientKeepAlive = clientKeepAlive && requestEnded
        return .answer(
            answer(
                .status(.badGateway, reason: "ServiceUnavailable", message: "the Kubernetes API server cannot be reached through the proxy")))
    }

    mutating func responseHead(_ response: HTTPResponseFraming.Head, quiescing: Bool) -> ResponseHeadAction {
        guard state == .forwarding else { return .none }
        status = response.status
        responseStarted = true
        upstreamKeepAlive = response.keepAlive
        if response.status == 101, isUpgradeRequest {
            pendingUpgrade = response.bytes
            return .awaitUpgrade
        }
        // An upgrade the upstream declined may leave its side of the connection expecting the
        // other protocol (a server's HTTP parser stops at an upgrade request): not reused.
        if isUpgradeRequest { upstreamKeepAlive = false }
        if isHTTP2 {
            clientFraming = .http2
            let headers = ProxyResponseHeaders.clean(response.headers)
            return .write(.parts(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers)))
        }
        switch response.framing {
        case .none, .length: clientFraming = .asUpstream
        case .chunked: clientFraming = clientIsHTTP10 ? .untilClose : .asUpstream
        case .untilClose: clientFraming = clientIsHTTP10 ? .untilClose : .chunkedHere
        }
        if !clientKeepAlive || isUpgradeRequest || quiescing || clientFraming == .untilClose { clientKeepAlive = false }
        return .write(.bytes(ProxyResponseHeaders.clientHead(response, framing: clientFraming, close: !clientKeepAlive)))
    }

    /// A part of the response's body (`payload` of its bytes are the body's, the rest chunk
    /// framing): whether and how it is written to the client.
    mutating func responseBody(payload: Int) -> ResponseBodyAction {
        guard state == .forwarding else { return .none }
        bytes += payload
        return clientFraming == .chunkedHere ? .writeChunk : .write
    }

    mutating func responseEnd() -> ResponseEndAction {
        guard state == .forwarding else { return .none }
        if let response = pendingUpgrade {
            pendingUpgrade = nil
            let audit = takeAudit()
            state = .upgraded
            return .upgrade(response, audit)
        }
        if !requestEnded {
            // Answered before the whole body arrived (an early 413 or 401): neither connection
            // can carry another request (an HTTP/2 stream reads and drops the rest).
            if !isHTTP2 { clientKeepAlive = false }
            upstreamKeepAlive = false
            requestEnded = true
        }
        return .writeEnd(finish(reuseUpstream: upstreamKeepAlive), clientFraming)
    }

    // MARK: Answers of the proxy's own

    private mutating func answer(_ answer: HTTPAnswer) -> Answer {
        state = .answered
        // The decoder stops at an upgrade request's head, and an unread body would be taken for
        // the next request: such connections are closed after the answer. (An HTTP/2 stream
        // needs nothing of the kind: the rest of its request is read and dropped.)
        if !isHTTP2, isUpgradeRequest || !requestEnded { clientKeepAlive = false }
        var headers = HTTPHeaders(answer.headers)
        if let contentType = answer.contentType { headers.add(name: "content-type", value: contentType) }
        headers.add(name: "content-length", value: String(answer.body.count))
        if !isHTTP2 && !clientKeepAlive { headers.add(name: "connection", value: "close") }
        status = Int(answer.status.code)
        bytes = answer.body.count
        responseStarted = true
        var finish: Finish?
        if requestEnded || !isHTTP2 && !clientKeepAlive {
            requestEnded = true
            finish = self.finish(reuseUpstream: false)
        }
        return Answer(head: HTTPResponseHead(version: .http1_1, status: answer.status, headers: headers), body: answer.body, finish: finish)
    }

    /// Whether a request the decoder rejects can still be answered (`400`): nothing of an answer
    /// has been written and none is coming from upstream.
    var canAnswerMalformed: Bool {
        (state == .idle || state == .deciding) && !responseStarted
    }

    /// The `400` for a request the decoder rejected; the connection closes after it.
    mutating func answerMalformed(now: ContinuousClock.Instant) -> Answer {
        clientKeepAlive = false
        if state == .idle {
            head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "-")
            start = now
            caller = ProxyDoor.Caller(route: .answered)
        }
        requestEnded = true
        return answer(.status(.badRequest, reason: "BadRequest", message: "malformed HTTP request"))
    }

    // MARK: Ends

    /// The client's connection (or stream) is gone: the audit of an unfinished exchange (`499`
    /// when it was forwarded and no response had started, else the status it had), once.
    mutating func clientClosed() -> Audit? {
        defer { state = .closed }
        switch state {
        case .forwarding:
            if status == 0 { status = 499 }
            return takeAudit()
        case .deciding, .connecting, .answered:
            return takeAudit()
        case .idle, .upgraded, .closed:
            return nil
        }
    }

    /// The connection closes after this exchange's answer: nothing more is decided for it.
    mutating func close() {
        state = .closed
    }

    private mutating func finish(reuseUpstream: Bool) -> Finish {
        let audit = takeAudit()
        buffered = []
        outgoing = nil
        state = .idle
        requestEnded = false
        return Finish(reuseUpstream: reuseUpstream, keepClient: clientKeepAlive, audit: audit)
    }

    /// The audit of the exchange, once.
    private mutating func takeAudit() -> Audit? {
        guard let head else { return nil }
        self.head = nil
        return Audit(caller: caller, method: head.method, uri: head.uri, status: status, bytes: bytes, start: start)
    }
}

/// Response headers as they go back to the client: less hop-by-hop headers (and those the
/// upstream's `Connection` names).
package enum ProxyResponseHeaders {
    /// For an HTTP/2 stream, which frames the response itself.
    package static func clean(_ headers: HTTPHeaders) -> HTTPHeaders {
        let named = ProxyRequestPolicy.connectionNamed(headers)
        // Most answers carry no hop-by-hop header but their framing (`Transfer-Encoding`, a
        // `Connection: keep-alive`): the headers are copied only when one goes.
        var result: HTTPHeaders?
        for (name, _) in headers where ProxyRequestPolicy.isHopByHop(name, named: named) {
            if result == nil { result = headers }
            result?.remove(name: name)
        }
        return result ?? headers
    }

    /// The head's bytes for an HTTP/1.1 connection: the upstream's status and fields less
    /// the hop-by-hop ones, framing as `framing` says (the upstream's `Content-Length` or
    /// `Transfer-Encoding` kept when its body goes on as it came), `Connection: close` when the
    /// connection ends with this response.
    static func clientHead(_ head: HTTPResponseFraming.Head, framing: ProxyExchange.ClientFraming, close: Bool) -> ByteBuffer {
        let keepsFraming = framing == .asUpstream
        var out = ByteBuffer()
        // Room for a small body too, which joins the head in one write (ProxyStreamHandler.writeBytes).
        var room = head.bytes.readableBytes + 64
        if keepsFraming, case .length(let length) = head.framing, length <= 4096 { room += length }
        out.reserveCapacity(room)
        // One pass over the head's bytes, names compared where they are (no string is made; the
        // names a Connection header lists are copied).
        head.bytes.withUnsafeReadableBytes { raw in
            // Fields the upstream's Connection names are hop-by-hop too.
            var named = ListedFieldNames()
            for field in head.fields where HTTPResponseFraming.matches(raw, field.name, "connection") {
                HTTPResponseFraming.forEachElement(raw, field.value) { named.add(UnsafeRawBufferPointer(rebasing: raw[$0])) }
            }
            // The status line as the upstream sent it, in this connection's version (the upstream may answer in HTTP/1.0).
            out.writeStaticString("HTTP/1.1")
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[8..<head.statusLineLength]))
            for (name, value) in head.fields {
                let isFraming =
                    HTTPResponseFraming.matches(raw, name, "transfer-encoding") || HTTPResponseFraming.matches(raw, name, "content-length")
                // The body's framing goes with a body forwarded as it came; else it is the connection's own.
                let kept =
                    isFraming
                    ? keepsFraming
                    : !(ProxyRequestPolicy.hopByHop.contains { HTTPResponseFraming.matches(raw, name, $0) }
                        || (!named.isEmpty && named.contains(UnsafeRawBufferPointer(rebasing: raw[name]))))
                guard kept else { continue }
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[name]))
                out.writeStaticString(": ")
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[value]))
                out.writeStaticString("\r\n")
            }
        }
        if framing == .chunkedHere { out.writeStaticString("transfer-encoding: chunked\r\n") }
        if close { out.writeStaticString("connection: close\r\n") }
        out.writeStaticString("\r\n")
        return out
    }
}
