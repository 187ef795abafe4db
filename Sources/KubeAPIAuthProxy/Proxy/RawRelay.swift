import NIOCore
import NIOHTTP1
import KubeAPIAuthHTTP

/// One side of a byte splice after an upgrade: what one connection reads, the other writes,
/// with the same backpressure as the HTTP exchange (reads wait while the partner cannot write).
/// When either side closes, so does the other.
final class RawRelay: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: RawRelay?
    private var context: ChannelHandlerContext?
    private var heldRead = HeldRead()

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
        if heldRead.mayPass(paused: partner?.context.map { !$0.channel.isWritable } ?? false) { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let partner, let partnerContext = partner.context { if partner.heldRead.takeHeld() { partnerContext.read() } }
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

extension RawRelay {
    /// Turns both connections of an upgraded exchange into a byte splice: a relay on each, after
    /// the handler of `client` and of `upstream` (the exchange's two HTTP handlers), then every HTTP
    /// handler removed — the client's typed ones and both encoders first, then the handlers that
    /// hold what either side sent right after the `101` (the upstream's response reader, the
    /// client's request decoder), whose bytes go to the relays once nothing typed is left between.
    static func splice(
        client context: ChannelHandlerContext, http1: ProxyStreamHandler.HTTP1Handlers, upstream upstreamContext: ChannelHandlerContext
    ) throws {
        let clientRelay = RawRelay()
        let upstreamRelay = RawRelay()
        RawRelay.pair(clientRelay, upstreamRelay)
        let client = context.pipeline.syncOperations
        let server = upstreamContext.pipeline.syncOperations
        try client.addHandler(clientRelay, position: .after(context.handler))
        try server.addHandler(upstreamRelay, position: .after(upstreamContext.handler))
        client.removeHandler(context: context, promise: nil)
        try server.removeHandler(server.handler(type: HTTPRequestEncoder.self), promise: nil)
        client.removeHandler(http1.encoder, promise: nil)
        client.removeHandler(http1.timeouts, promise: nil)
        server.removeHandler(context: upstreamContext, promise: nil)
        client.removeHandler(http1.decoder, promise: nil)
    }
}
