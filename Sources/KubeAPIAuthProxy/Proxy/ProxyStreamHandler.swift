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
///
/// The handler translates: what happens to an exchange is ``ProxyExchange``'s decision and what
/// happens to the connection ``HTTPServerConnection``'s; it feeds them NIO's events and carries out
/// what they return, keeping only what is bound to channels (the upstream handler, the session
/// registration, the splice).
final class ProxyStreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The HTTP/1.1 handlers an upgrade removes (nil for HTTP/2 streams).
    struct HTTP1Handlers {
        let encoder: HTTPResponseEncoder
        let decoder: ByteToMessageHandler<HTTPRequestDecoder>
        let timeouts: ConnectionTimeoutHandler
    }

    /// Parts of pipelined requests read and held behind an unanswered one before reading pauses.
    static let pipelineLimit = 9

    private let door: ProxyDoor
    private let pool: UpstreamPool
    private let http1: HTTP1Handlers?
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var client = PeerAddress.unknown
    /// The exchange in progress: every decision about it is the value's.
    private var exchange: ProxyExchange
    /// The connection's rules, shared with the webhook (an HTTP/2 stream carries one exchange, so
    /// only its quiescing and held reads apply there).
    private var connection = HTTPServerConnection(readDeadline: .head, pipelineLimit: ProxyStreamHandler.pipelineLimit)
    private var upstream: UpstreamHandler?
    private var upstreamStart = ContinuousClock.now
    /// Where a forwarded response's bytes are written on an HTTP/1.1 connection: past the
    /// response encoder (which frames the proxy's own answers only).
    private var bytesContext: ChannelHandlerContext?
    /// A forwarded response's bytes gathered until the next flush (see ``writeBytes(_:)``).
    private var gathered: ByteBuffer?
    /// The exchange's place among the open sessions (forwarded under an identity of ours).
    private var registration: OpenExchanges.Registration?
    /// Both connections of a spliced upgrade, which a revocation closes.
    private var spliced: (client: any Channel, upstream: any Channel)?
    private var processingHeld = false

    init(door: ProxyDoor, pool: UpstreamPool, http1: HTTP1Handlers?, logger: Logger) {
        self.door = door
        self.pool = pool
        self.http1 = http1
        self.logger = logger
        self.exchange = ProxyExchange(isHTTP2: http1 == nil)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        client = PeerAddress(of: context.channel)
        if let http1 { bytesContext = try? context.pipeline.syncOperations.context(handler: http1.encoder) }
    }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .deliver(let part, let milestone) = connection.received(unwrapInboundIn(data)) else { return }
        http1?.timeouts.note(milestone)
        handle(part, context: context)
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch exchange.requestPart(part, now: .now) {
        case .none:
            break
        case .route(let head):
            route(head, context: context)
        case .sendUpstream(let part):
            if case .end = part {
                upstream?.write(part, flush: true)
            } else {
                upstream?.write(part)
            }
        case .finish(let finish):
            finished(finish, context: context)
        }
    }

    private func route(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        switch door.route(head, client: client, start: exchange.start, on: context.eventLoop) {
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
        switch exchange.routed(route, upstreamAuthority: pool.target.authority) {
        case .none:
            return
        case .answer(let answer):
            write(answer, context: context)
        case .connect:
            if let session = exchange.caller.session {
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                registration = door.sessions.register(session, reviewedAt: exchange.caller.reviewedAt, on: context.eventLoop) {
                    registration, reason in
                    bound.value.endSession(registration, reason)
                }
            }
            if let idle = pool.takeIdle(on: context.eventLoop) {
                attach(idle, context: context)
                return
            }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            pool.connect(on: context.eventLoop).whenComplete { result in
                let (handler, context) = bound.value
                switch result {
                case .success(let channel):
                    guard let upstream = try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self) else {
                        channel.close(promise: nil)
                        return
                    }
                    handler.attach(upstream, context: context)
                case .failure(let error):
                    handler.upstreamFailed(error, context: context)
                }
            }
        }
    }

    private func attach(_ handler: UpstreamHandler, context: ChannelHandlerContext) {
        guard exchange.state == .connecting, let attached = exchange.upstreamAttached() else {
            handler.close()
            return
        }
        upstream = handler
        handler.attach(self)
        upstreamStart = .now
        handler.send(
            attached.head, toHEAD: attached.toHEAD, upgradeRequested: attached.upgradeRequested, mode: attached.responseMode)
        for part in attached.buffered {
            switch part {
            case .body(let body): handler.write(.body(.byteBuffer(body)))
            case .end(let trailers): handler.write(.end(trailers))
            case .head: break
            }
        }
        handler.flush()
        if handler.isWritable, connection.takeHeldRead(doorPaused: readPaused) { context.read() }
    }

    /// The exchange's own reason to stop reading from the client.
    private var readPaused: Bool {
        ProxyExchange.readPaused(state: exchange.state, requestEnded: exchange.requestEnded, upstreamWritable: upstream?.isWritable ?? false)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        upstream?.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if connection.readRequested(doorPaused: readPaused) { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { upstream?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if exchange.state != .upgraded { leaveSessions() }
        if let audit = exchange.clientClosed() { self.audit(audit) }
        upstream?.abandon()
        upstream = nil
        connection.close()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else {
            context.close(promise: nil)
            return
        }
        switch connection.parseError(doorCanAnswer: exchange.canAnswerMalformed) {
        case .answerBadRequest:
            // A request the decoder cannot read: answer 400 and close (the stream is out of step).
            write(exchange.answerMalformed(now: .now), context: context)
        case .close:
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if connection.quiesce() == .closeNow { context.close(promise: nil) }
    }

    // MARK: Answers from the proxy

    private func write(_ answer: ProxyExchange.Answer, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: answer.body.count)
        buffer.writeBytes(answer.body)
        context.write(wrapOutboundOut(.head(answer.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        if let finish = answer.finish { finished(finish, context: context) }
    }

    // MARK: Upstream side (called by UpstreamHandler on the same event loop)

    func upstreamResponseHead(_ response: HTTPResponseFraming.Head) {
        guard let context else { return }
        let action = exchange.responseHead(response, quiescing: connection.quiescing)
        if case .none = action { return }
        door.metrics.proxyUpstream(duration: upstreamStart.duration(to: .now))
        switch action {
        case .write(.bytes(let head)): writeBytes(head)
        case .write(.parts(let head)): context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .none, .awaitUpgrade: break
        }
    }

    func upstreamResponseBody(_ body: ByteBuffer, payload: Int) {
        guard let context else { return }
        switch exchange.responseBody(payload: payload) {
        case .none:
            return
        case .write:
            if exchange.isHTTP2 {
                context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            } else {
                writeBytes(body)
            }
        case .writeChunk:
            guard body.readableBytes > 0 else { return }
            var size = context.channel.allocator.buffer(capacity: 18)
            size.writeString(String(body.readableBytes, radix: 16))
            size.writeStaticString("\r\n")
            writeBytes(size)
            writeBytes(body)
            writeBytes(ByteBuffer(staticString: "\r\n"))
        }
    }

    func upstreamResponseEnd(_ trailers: HTTPHeaders?) {
        guard let context else { return }
        switch exchange.responseEnd() {
        case .none:
            return
        case .upgrade(let response, let audit):
            if let audit { self.audit(audit) }
            upgrade(response, context: context)
        case .writeEnd(let finish, let framing):
            switch framing {
            case .http2: context.write(wrapOutboundOut(.end(trailers)), promise: nil)
            case .chunkedHere: writeBytes(ByteBuffer(staticString: "0\r\n\r\n"))
            case .asUpstream, .untilClose: break
            }
            flush(context: context)
            finished(finish, context: context)
        }
    }

    /// Writes a forwarded response's bytes to an HTTP/1.1 client, past the response encoder.
    ///
    /// Pieces that arrive together (a head and its body, a chunk's size line, data and CRLF) are
    /// gathered into one buffer up to ``gatherLimit`` and written at the next flush: NIOSSL seals
    /// each write in a TLS record of its own, so a small response written as head and body took
    /// two `SSL_write`s and two records (gathered, `SSL_write` went from 4.0 % to 3.1 % of the
    /// proxy's CPU under wrk). A piece is copied only to join a gathered one within the limit, so
    /// larger ones go on as they came.
    private func writeBytes(_ bytes: ByteBuffer) {
        if var pending = gathered {
            gathered = nil
            if pending.readableBytes + bytes.readableBytes <= Self.gatherLimit {
                pending.writeImmutableBuffer(bytes)
                gathered = pending
                return
            }
            bytesContext?.write(NIOAny(pending), promise: nil)
        }
        if bytes.readableBytes <= Self.gatherLimit {
            gathered = bytes
        } else {
            bytesContext?.write(NIOAny(bytes), promise: nil)
        }
    }

    /// The most bytes gathered into one write: a TLS record's payload.
    static let gatherLimit = 16 * 1024

    /// Gathered bytes go before any flush toward the client, whoever asks for it.
    func flush(context: ChannelHandlerContext) {
        if let pending = gathered {
            gathered = nil
            bytesContext?.write(NIOAny(pending), promise: nil)
        }
        context.flush()
    }

    func upstreamReadComplete() {
        guard let context else { return }
        flush(context: context)
    }

    /// Whether the client can take more of the response.
    var clientWritable: Bool { context?.channel.isWritable ?? false }

    func upstreamWritable() {
        guard let context, exchange.state == .forwarding else { return }
        if connection.takeHeldRead(doorPaused: readPaused) { context.read() }
    }

    /// The upstream connection failed or closed before the response ended.
    func upstreamFailed(_ error: (any Error)?, context: ChannelHandlerContext) {
        switch exchange.upstreamFailed() {
        case .none:
            return
        case .cutClient(let audit):
            // Cut as the upstream cut it: the client sees a truncated response.
            upstream = nil
            door.metrics.proxyUpstreamFailed()
            logger.info("upstream closed during a response", metadata: ["path": "\(AuditLog.bounded(exchange.path))"])
            if let audit { self.audit(audit) }
            connection.close()
            context.close(promise: nil)
        case .answer(let answer):
            upstream = nil
            door.metrics.proxyUpstreamFailed()
            logger.warning("upstream unavailable", metadata: ["error": "\(error.map { "\($0)" } ?? "connection closed")"])
            write(answer, context: context)
        }
    }

    func upstreamFailed(_ error: (any Error)?) {
        guard let context else { return }
        upstreamFailed(error, context: context)
    }

    // MARK: Ends

    private func finished(_ finish: ProxyExchange.Finish, context: ChannelHandlerContext) {
        leaveSessions()
        if let audit = finish.audit { self.audit(audit) }
        if let upstream {
            self.upstream = nil
            if finish.reuseUpstream { upstream.release() } else { upstream.abandon() }
        }
        // An HTTP/2 stream closes itself once both sides have ended.
        if exchange.isHTTP2 { return }
        switch connection.answerFinished(keepAlive: finish.keepClient) {
        case .close:
            exchange.close()
            // After the answer has gone out (closing at once would drop what is still queued): an
            // empty write completes once every write before it has.
            guard let bytesContext else { return context.close(promise: nil) }
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            bytesContext.writeAndFlush(NIOAny(context.channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                bound.value.close(promise: nil)
            }
        case .proceed:
            http1?.timeouts.responseSent()
            processHeld(context: context)
        }
    }

    /// The pipelined requests held behind the finished one, in order, while the exchange can take
    /// them; then reading resumes. A request finished meanwhile does not start a nested round.
    private func processHeld(context: ChannelHandlerContext) {
        guard !processingHeld else { return }
        processingHeld = true
        while let (part, milestone) = connection.nextHeld() {
            http1?.timeouts.note(milestone)
            handle(part, context: context)
        }
        processingHeld = false
        if connection.takeHeldRead(doorPaused: readPaused) { context.read() }
    }

    private func audit(_ audit: ProxyExchange.Audit) {
        door.audit(
            audit.caller, method: audit.method, uri: audit.uri, status: audit.status, bytes: audit.bytes,
            duration: audit.start.duration(to: .now), client: client, protocolName: exchange.isHTTP2 ? "h2" : "http/1.1")
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
        switch exchange.state {
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
    private func upgrade(_ response: ByteBuffer, context: ChannelHandlerContext) {
        guard let http1, let upstream, let upstreamContext = upstream.context, let bytesContext else {
            upstream?.abandon()
            self.upstream = nil
            context.close(promise: nil)
            return
        }
        bytesContext.writeAndFlush(NIOAny(response), promise: nil)
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
