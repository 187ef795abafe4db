import NIOCore
import NIOHTTP1
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// The last handler of a pooled upstream connection: hands response parts to the
/// ``ProxyStreamHandler`` it is attached to (same event loop), and holds back reads while that
/// client cannot take more.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private(set) var context: ChannelHandlerContext?
    private var stream: ProxyStreamHandler?
    private var pendingRead = false
    /// When the connection last became idle (`nil` while in use).
    private var idleSince: NIODeadline?
    /// The one idle check of this connection, if scheduled (see ``becameIdle(timeout:)``).
    private var idleCheck: Scheduled<Void>?
    private weak var pool: UpstreamPool?

    init(pool: UpstreamPool?) {
        self.pool = pool
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func attach(_ stream: ProxyStreamHandler) {
        idleSince = nil
        self.stream = stream
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func write(_ part: HTTPClientRequestPart, flush: Bool = false) {
        guard let context else { return }
        if flush {
            context.writeAndFlush(wrapOutboundOut(part), promise: nil)
        } else {
            context.write(wrapOutboundOut(part), promise: nil)
        }
    }

    func flush() {
        context?.flush()
    }

    /// The exchange completed cleanly: back to the pool, reading again (a read held back for a
    /// slow client would otherwise leave the idle connection deaf to the upstream closing it).
    func release() {
        stream = nil
        guard let context, let pool else { return }
        if pendingRead {
            pendingRead = false
            context.read()
        }
        pool.release(context.channel, handler: self)
    }

    /// The exchange did not complete (client gone, request cut): the connection cannot be reused.
    func abandon() {
        stream = nil
        context?.close(promise: nil)
    }

    /// Closes the connection once it has been idle for `timeout`. Under load a connection goes
    /// idle thousands of times a second, so there is no timer per release (scheduling and
    /// cancelling one costs more than the rest of the release): one check per connection runs
    /// when the earliest possible expiry comes and schedules itself again while in use.
    func becameIdle(timeout: TimeAmount) {
        guard let context else { return }
        idleSince = context.eventLoop.now
        guard idleCheck == nil else { return }
        scheduleIdleCheck(in: timeout, timeout: timeout, context: context)
    }

    private func scheduleIdleCheck(in delay: TimeAmount, timeout: TimeAmount, context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            let (handler, context) = bound.value
            handler.idleCheck = nil
            // In use, or removed: the next release schedules a check again.
            guard let since = handler.idleSince, handler.context != nil else { return }
            let expiry = since + timeout
            if context.eventLoop.now >= expiry {
                context.close(promise: nil)
            } else {
                handler.scheduleIdleCheck(in: expiry - context.eventLoop.now, timeout: timeout, context: context)
            }
        }
    }

    func resumeReading() {
        guard let context, pendingRead else { return }
        pendingRead = false
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let stream else {
            // Bytes on an idle connection: out of step; do not reuse it.
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head): stream.upstreamResponseHead(head)
        case .body(let body): stream.upstreamResponseBody(body)
        case .end(let trailers): stream.upstreamResponseEnd(trailers)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        stream?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if let stream, !stream.clientWritable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { stream?.upstreamWritable() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        if let stream {
            self.stream = nil
            stream.upstreamFailed(nil)
        }
        pool?.forget(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let stream {
            self.stream = nil
            stream.upstreamFailed(error)
        }
        context.close(promise: nil)
    }
}

/// One side of a byte splice after an upgrade: what one connection reads, the other writes,
/// with the same backpressure as the HTTP exchange (reads wait while the partner cannot write).
/// When either side closes, so does the other.
final class RawRelay: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: RawRelay?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func pair(_ a: RawRelay, _ b: RawRelay) {
        a.partner = b
        b.partner = a
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    private func partnerWrite(_ buffer: ByteBuffer) {
        partner?.context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partnerWrite(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if let partnerContext = partner?.context, !partnerContext.channel.isWritable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let partner, partner.pendingRead, let partnerContext = partner.context {
            partner.pendingRead = false
            partnerContext.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let partnerContext = partner?.context {
            partnerContext.flush()
            partnerContext.close(promise: nil)
        }
        partner = nil
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The client half-closed its side (an exec with stdin at EOF): pass the close on.
        if case ChannelEvent.inputClosed = event {
            partner?.context?.close(mode: .output, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
