import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RancherAuth
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// Forwards one client's requests: an HTTP/1.1 connection (one request after another) or one
/// HTTP/2 stream (one request). The head is routed by the ``ProxyDoor``; a forwarded request gets
/// a pooled upstream connection on the same event loop, and from then on parts flow both ways as
/// they arrive, without buffering:
///
/// - backpressure: reading from the client pauses while the upstream cannot take more (its
///   channel is not writable), and reading from the upstream pauses while the client cannot —
///   the handlers hold back the `read` events that autoRead issues, so memory per stream stays
///   at one read's worth (a watch or `logs -f` costs what it sends, not what it has sent);
/// - no read deadline applies once a request head is complete, so watches and uploads are
///   never cut; only the header timeout and the idle timeout between requests apply;
/// - an upgrade (`101 Switching Protocols` to an upgrade request, HTTP/1.1 only) turns both
///   connections into a byte splice (``RawRelay``) until either side closes.
final class ProxyStreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Waiting for a request head.
        case idle
        /// The door is deciding (a scrypt check or a SubjectAccessReview may be running).
        case deciding
        /// Forwarded: waiting for an upstream connection.
        case connecting
        /// Parts flow to and from the upstream connection.
        case forwarding
        /// Answered here; the rest of the request body is read and dropped.
        case answered
        /// Spliced as bytes; this handler is gone from the pipeline.
        case upgraded
        case closed
    }

    /// The HTTP/1.1 handlers an upgrade removes (nil for HTTP/2 streams).
    struct HTTP1Handlers {
        let encoder: HTTPResponseEncoder
        let decoder: ByteToMessageHandler<HTTPRequestDecoder>
        let timeouts: ConnectionTimeoutHandler
    }

    private let door: ProxyDoor
    private let pool: UpstreamPool
    private let http1: HTTP1Handlers?
    private let logger: Logger
    private var state = State.idle
    private var context: ChannelHandlerContext?
    private var client = PeerAddress.unknown

    // The exchange in progress.
    private var head: HTTPRequestHead?
    private var caller = ProxyDoor.Caller(route: .answered)
    private var start = ContinuousClock.now
    private var upstreamStart = ContinuousClock.now
    private var buffered: [HTTPServerRequestPart] = []
    private var requestEnded = false
    private var responseStarted = false
    private var status = 0
    private var bytes = 0
    private var isUpgradeRequest = false
    private var clientKeepAlive = true
    private var upstreamKeepAlive = true
    private var upstream: UpstreamHandler?
    /// Parts of the next requests that arrived while one is in progress (HTTP/1.1 pipelining).
    private var queued: CircularBuffer<HTTPServerRequestPart> = []
    /// A `read` held back for backpressure.
    private var heldRead = HeldRead()
    private var quiescing = false
    /// The end of the last response, to close after it on connections that do not stay open.
    private var lastWrite: EventLoopFuture<Void>?
    /// The upstream's `101`, spliced once its (empty) end has been read.
    private var pendingUpgrade: HTTPResponseHead?
    /// The exchange's place among the open sessions (forwarded under an identity of ours).
    private var registration: OpenExchanges.Registration?
    /// Both connections of a spliced upgrade, which a revocation closes.
    private var spliced: (client: any Channel, upstream: any Channel)?

    init(door: ProxyDoor, pool: UpstreamPool, http1: HTTP1Handlers?, logger: Logger) {
        self.door = door
        self.pool = pool
        self.http1 = http1
        self.logger = logger
    }

    private var isHTTP2: Bool { http1 == nil }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        client = PeerAddress(of: context.channel)
    }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if requestEnded || !queued.isEmpty {
            // The next request, pipelined behind one still being answered.
            if state != .idle || !queued.isEmpty {
                queued.append(part)
                return
            }
        }
        handle(part, context: context)
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch (state, part) {
        case (.idle, .head(let head)):
            begin(head, context: context)
        case (.idle, _):
            break  // parts of a request answered and closed; nothing to do
        case (.deciding, .head), (.connecting, .head), (.forwarding, .head), (.answered, .head):
            break  // cannot happen: a head after an incomplete request is a decoder error
        case (.deciding, let part), (.connecting, let part):
            if case .end = part { requestEnded = true }
            buffered.append(part)
        case (.forwarding, .body(let body)):
            upstream?.write(.body(.byteBuffer(body)))
        case (.forwarding, .end(let trailers)):
            requestEnded = true
            upstream?.write(.end(trailers), flush: true)
        case (.answered, .body):
            break
        case (.answered, .end):
            requestEnded = true
            finishExchange(reuseUpstream: false)
        case (.upgraded, _), (.closed, _):
            break
        }
    }

    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        http1?.timeouts.requestHeadReceived()
        http1?.timeouts.requestReceived()
        self.head = head
        start = .now
        state = .deciding
        requestEnded = false
        responseStarted = false
        status = 0
        bytes = 0
        buffered = []
        upstreamKeepAlive = true
        clientKeepAlive = isHTTP2 || head.isKeepAlive
        isUpgradeRequest =
            !isHTTP2 && head.headers.contains(name: "upgrade")
            && head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" }
        switch door.route(head, client: client, start: start, on: context.eventLoop) {
        case .now(let route):
            apply(route, context: context)
        case .later(let completion):
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            completion.whenComplete(on: context.eventLoop) { route in
                let (handler, context) = bound.value
                handler.apply(route, context: context)
            }
        }
    }

    private func apply(_ route: ProxyDoor.Route, context: ChannelHandlerContext) {
        guard state == .deciding, let head else { return }
        switch route {
        case .answer(let answer, let caller):
            self.caller = caller
            self.answer(answer, context: context)
        case .forward(let headers, let caller):
            self.caller = caller
            state = .connecting
            if let session = caller.session {
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                registration = door.sessions.register(session, on: context.eventLoop) { registration, reason in
                    bound.value.endSession(registration, reason)
                }
            }
            let outgoing = upstreamHead(head, headers: headers)
            if let idle = pool.takeIdle(on: context.eventLoop) {
                attach(idle, head: outgoing, context: context)
                return
            }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            pool.connect(on: context.eventLoop).whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success(let channel):
                    handler.attach(channel, head: outgoing, context: context)
                case .failure(let error):
                    handler.upstreamFailed(error, context: context)
                }
            }
        }
    }

    /// The head sent upstream: the routed headers, `Host` naming the upstream, and framing that
    /// the encoder can follow (a length when the whole body is known, else chunked).
    private func upstreamHead(_ head: HTTPRequestHead, headers: HTTPHeaders) -> HTTPRequestHead {
        var headers = headers
        headers.replaceOrAdd(name: "host", value: pool.target.authority)
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

    private func attach(_ channel: any Channel, head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard state == .connecting, let handler = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) else {
            channel.close(promise: nil)
            return
        }
        upstream = handler
        handler.attach(self)
        state = .forwarding
        upstreamStart = .now
        handler.write(.head(head))
        for part in buffered {
            switch part {
            case .body(let body): handler.write(.body(.byteBuffer(body)))
            case .end(let trailers): handler.write(.end(trailers))
            case .head: break
            }
        }
        buffered = []
        handler.flush()
        if handler.isWritable, heldRead.takeHeld() { context.read() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        upstream?.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        let paused: Bool
        switch state {
        case .deciding, .connecting: paused = !requestEnded || queued.count > 8
        case .forwarding: paused = requestEnded ? queued.count > 8 : !(upstream?.isWritable ?? false)
        case .answered: paused = false
        case .idle: paused = queued.count > 8
        case .upgraded, .closed: paused = false
        }
        if heldRead.mayPass(paused: paused) { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { upstream?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if state != .upgraded { leaveSessions() }
        switch state {
        case .deciding, .connecting, .forwarding, .answered:
            if state == .forwarding { status = status == 0 ? 499 : status }
            auditExchange()
            upstream?.abandon()
            upstream = nil
        case .idle, .upgraded, .closed:
            break
        }
        state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError, state == .idle || state == .deciding, !responseStarted {
            // A request the decoder cannot read: answer 400 and close (the stream is out of step).
            clientKeepAlive = false
            if state == .idle { head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "-") }
            state = .answered
            requestEnded = true
            writeAnswer(.status(.badRequest, reason: "BadRequest", message: "malformed HTTP request"), context: context)
            finishExchange(reuseUpstream: false)
            return
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            if state == .idle { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Answers from the proxy

    private func answer(_ answer: HTTPAnswer, context: ChannelHandlerContext) {
        state = .answered
        // The decoder stops at an upgrade request's head, and an unread body would be taken for
        // the next request: such connections are closed after the answer. (An HTTP/2 stream
        // needs nothing of the kind: the rest of its request is read and dropped.)
        if !isHTTP2, isUpgradeRequest || !requestEnded { clientKeepAlive = false }
        writeAnswer(answer, context: context)
        if requestEnded || !isHTTP2 && !clientKeepAlive {
            requestEnded = true
            finishExchange(reuseUpstream: false)
        }
    }

    private func writeAnswer(_ answer: HTTPAnswer, context: ChannelHandlerContext) {
        var headers = HTTPHeaders(answer.headers)
        if let contentType = answer.contentType { headers.add(name: "content-type", value: contentType) }
        headers.add(name: "content-length", value: String(answer.body.count))
        if !isHTTP2 && !clientKeepAlive { headers.add(name: "connection", value: "close") }
        self.status = Int(answer.status.code)
        bytes = answer.body.count
        responseStarted = true
        var buffer = context.channel.allocator.buffer(capacity: answer.body.count)
        buffer.writeBytes(answer.body)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: answer.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        lastWrite = context.writeAndFlush(wrapOutboundOut(.end(nil)))
    }

    // MARK: Upstream side (called by UpstreamHandler on the same event loop)

    func upstreamResponseHead(_ response: HTTPResponseHead) {
        guard let context, state == .forwarding else { return }
        door.metrics.proxyUpstream(duration: upstreamStart.duration(to: .now))
        status = Int(response.status.code)
        responseStarted = true
        upstreamKeepAlive = response.isKeepAlive
        if response.status == .switchingProtocols, isUpgradeRequest {
            // Spliced at the response's end: the decoder still has the `.end` part to deliver.
            pendingUpgrade = response
            return
        }
        // An upgrade the upstream declined may leave its side of the connection expecting the
        // other protocol (a server's HTTP parser stops at an upgrade request): not reused.
        if isUpgradeRequest { upstreamKeepAlive = false }
        var headers = ProxyResponseHeaders.clean(response.headers)
        if !isHTTP2 && (!clientKeepAlive || isUpgradeRequest || quiescing) {
            clientKeepAlive = false
            headers.add(name: "connection", value: "close")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
    }

    func upstreamResponseBody(_ body: ByteBuffer) {
        guard let context, state == .forwarding else { return }
        bytes += body.readableBytes
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
    }

    func upstreamResponseEnd(_ trailers: HTTPHeaders?) {
        guard let context, state == .forwarding else { return }
        if let response = pendingUpgrade {
            pendingUpgrade = nil
            upgrade(response, context: context)
            return
        }
        lastWrite = context.writeAndFlush(wrapOutboundOut(.end(trailers)))
        if requestEnded {
            finishExchange(reuseUpstream: upstreamKeepAlive)
        } else {
            // Answered before the whole body arrived (an early 413 or 401): neither connection
            // can carry another request (an HTTP/2 stream reads and drops the rest).
            if !isHTTP2 { clientKeepAlive = false }
            upstreamKeepAlive = false
            requestEnded = true
            finishExchange(reuseUpstream: false)
        }
    }

    func upstreamReadComplete() {
        context?.flush()
    }

    /// Whether the client can take more of the response.
    var clientWritable: Bool { context?.channel.isWritable ?? false }

    func upstreamWritable() {
        guard let context, state == .forwarding else { return }
        if heldRead.takeHeld() { context.read() }
    }

    /// The upstream connection failed or closed before the response ended.
    func upstreamFailed(_ error: (any Error)?, context: ChannelHandlerContext) {
        guard state == .forwarding || state == .connecting else { return }
        upstream = nil
        door.metrics.proxyUpstreamFailed()
        if responseStarted {
            // Cut as the upstream cut it: the client sees a truncated response.
            logger.info("upstream closed during a response", metadata: ["path": "\(AuditLog.bounded(head?.uri.prefix(while: { $0 != "?" }) ?? ""))"])
            auditExchange()
            state = .closed
            context.close(promise: nil)
            return
        }
        logger.warning("upstream unavailable", metadata: ["error": "\(error.map { "\($0)" } ?? "connection closed")"])
        clientKeepAlive = clientKeepAlive && requestEnded
        answer(
            .status(.badGateway, reason: "ServiceUnavailable", message: "the Kubernetes API server cannot be reached through the proxy"),
            context: context)
    }

    func upstreamFailed(_ error: (any Error)?) {
        guard let context else { return }
        upstreamFailed(error, context: context)
    }

    // MARK: Ends

    private func finishExchange(reuseUpstream: Bool) {
        leaveSessions()
        auditExchange()
        if let upstream {
            self.upstream = nil
            if reuseUpstream { upstream.release() } else { upstream.abandon() }
        }
        head = nil
        buffered = []
        state = .idle
        requestEnded = false
        guard let context else { return }
        // An HTTP/2 stream closes itself once both sides have ended.
        if isHTTP2 { return }
        http1?.timeouts.responseSent()
        if !clientKeepAlive || quiescing {
            state = .closed
            // After the answer has gone out (closing at once would drop what is still queued).
            if let lastWrite {
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                lastWrite.whenComplete { _ in bound.value.close(promise: nil) }
            } else {
                context.close(promise: nil)
            }
            return
        }
        // The next pipelined request, all of its parts; a request after that waits its turn.
        while let next = queued.first {
            if case .head = next, state != .idle { break }
            queued.removeFirst()
            handle(next, context: context)
        }
        if state == .idle, heldRead.takeHeld() { context.read() }
    }

    private func auditExchange() {
        guard let head else { return }
        door.audit(
            caller, method: head.method, uri: head.uri, status: status, bytes: bytes, duration: start.duration(to: .now),
            client: client, protocolName: isHTTP2 ? "h2" : "http/1.1")
        self.head = nil
    }

    // MARK: Sessions

    private func leaveSessions() {
        if let registration { door.sessions.unregister(registration) }
        registration = nil
    }

    /// The records no longer let this exchange's identity through: it ends now. An HTTP/1.1
    /// connection is closed, an HTTP/2 stream reset, a spliced upgrade closed on both sides.
    private func endSession(_ ended: OpenExchanges.Registration, _ reason: SessionEnd) {
        guard ended == registration, let context else { return }
        registration = nil
        switch state {
        case .upgraded:
            spliced?.upstream.close(promise: nil)
            spliced?.client.close(promise: nil)
            spliced = nil
        case .deciding, .connecting, .forwarding, .answered:
            upstream?.abandon()
            upstream = nil
            context.close(promise: nil)
        case .idle, .closed:
            break
        }
    }

    // MARK: Upgrade

    /// Hands the client the `101` and turns both connections into a byte splice.
    private func upgrade(_ response: HTTPResponseHead, context: ChannelHandlerContext) {
        guard let http1, let upstream, let upstreamContext = upstream.context else { return }
        context.writeAndFlush(wrapOutboundOut(.head(response)), promise: nil)
        auditExchange()
        state = .upgraded
        self.upstream = nil
        if let registration {
            // The splice outlives this handler: the session ends with the client's connection.
            spliced = (context.channel, upstreamContext.channel)
            let sessions = door.sessions
            context.channel.closeFuture.whenComplete { _ in sessions.unregister(registration) }
        }
        do {
            try RawRelay.splice(client: context, http1: http1, upstream: upstreamContext)
        } catch {
            logger.warning("upgrade could not be spliced", metadata: ["error": "\(error)"])
            upstreamContext.close(promise: nil)
            context.close(promise: nil)
        }
    }
}

/// Response headers as they go back to the client: less hop-by-hop headers (and those the
/// upstream's `Connection` names); framing is the client connection's own.
enum ProxyResponseHeaders {
    static func clean(_ headers: HTTPHeaders) -> HTTPHeaders {
        // Most answers carry no hop-by-hop header but their framing: then only that goes.
        var named: Set<String> = []
        for value in headers["connection"] {
            for token in value.split(separator: ",") { named.insert(token.trimmingCharacters(in: .whitespaces).lowercased()) }
        }
        var result = headers
        for (name, _) in headers {
            let lower = ProxyRequestPolicy.lowercase(name)
            if ProxyRequestPolicy.hopByHop.contains(lower) || named.contains(lower) { result.remove(name: name) }
        }
        return result
    }
}
