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
    /// A `read` held back while the client cannot take more of the response.
    private var heldRead = HeldRead()
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
        if heldRead.takeHeld() { context.read() }
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
        guard let context else { return }
        if heldRead.takeHeld() { context.read() }
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
        if heldRead.mayPass(paused: stream.map { !$0.clientWritable } ?? false) { context.read() }
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
