import NIOCore
import NIOHTTP1
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// The last handler of a pooled upstream connection: reads its responses by their framing
/// (``HTTPResponseFraming``), hands their parts to the ``ProxyStreamHandler`` it is attached to
/// (same event loop), and holds back reads while that client cannot take more.
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
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
    private var responses = HTTPResponseFraming()
    /// What followed a `101` in the read that carried it: the upgraded protocol's first bytes,
    /// passed on to the splice when this handler leaves the pipeline.
    private var leftover: ByteBuffer?

    init(pool: UpstreamPool?) {
        self.pool = pool
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if let leftover {
            self.leftover = nil
            context.fireChannelRead(wrapInboundOut(leftover))
        }
        context.leavePipeline(removalToken: removalToken)
    }

    func attach(_ stream: ProxyStreamHandler) {
        idleSince = nil
        self.stream = stream
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }
    var isActive: Bool { context?.channel.isActive ?? false }

    func close() {
        context?.close(promise: nil)
    }

    /// Sends a request's head; its response is read as `toHEAD`, `upgradeRequested` and `mode` say.
    func send(
        _ head: HTTPRequestHead, toHEAD: Bool, upgradeRequested: Bool, mode: HTTPResponseFraming.Mode
    ) {
        responses.expectResponse(toHEAD: toHEAD, upgradeRequested: upgradeRequested, mode: mode)
        write(.head(head))
    }

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
        pool.release(self, channel: context.channel)
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
        var buffer = unwrapInboundIn(data)
        do {
            while let event = try responses.read(&buffer) {
                // Bytes on an idle connection fail the read above; a stream is attached here.
                guard let stream else { return context.close(promise: nil) }
                switch event {
                case .head(let head):
                    stream.upstreamResponseHead(head)
                case .body(let body, let payload):
                    stream.upstreamResponseBody(body, payload: payload)
                case .end(let trailers):
                    // Kept before the stream splices: the splice takes them as this handler leaves.
                    if responses.isUpgraded { leftover = responses.leftover(from: &buffer) }
                    stream.upstreamResponseEnd(trailers)
                }
            }
        } catch {
            failed(error, context: context)
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
            // A body framed by the connection's end ends now; any other response was cut.
            do {
                if case .end(let trailers) = try responses.closed() {
                    stream.upstreamResponseEnd(trailers)
                }
            } catch {}
            if let stream = self.stream {
                self.stream = nil
                stream.upstreamFailed(nil)
            }
        }
        pool?.forget(self, channel: context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failed(error, context: context)
    }

    private func failed(_ error: any Error, context: ChannelHandlerContext) {
        if let stream {
            self.stream = nil
            stream.upstreamFailed(error)
        }
        context.close(promise: nil)
    }
}
