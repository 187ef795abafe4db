import NIOCore

/// Closes connections that are too slow or idle too long (slowloris protection), with the Go
/// service's semantics:
/// - from connection start, or from the first byte of a later request, the request head must
///   arrive within `headerTimeout` and the whole request within `requestReadTimeout`;
/// - between requests on a keep-alive connection, the next request must start within `idleTimeout`.
///
/// It sits first in the pipeline, sees raw bytes, and learns where requests begin and end from
/// the ``Event``s the request handler sends outbound.
public final class ConnectionTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = IOData
    public typealias OutboundOut = IOData

    public enum Event: Sendable {
        case requestHeadReceived
        case requestReceived
        case responseSent
    }

    private enum State {
        case readingRequest
        case processing(bytesPending: Bool)
        case idle
    }

    private let headerTimeout: TimeAmount
    private let requestReadTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private var state = State.readingRequest
    private var headerTimer: Scheduled<Void>?
    private var readTimer: Scheduled<Void>?
    private var idleTimer: Scheduled<Void>?

    public init(headerTimeout: TimeAmount, requestReadTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.headerTimeout = headerTimeout
        self.requestReadTimeout = requestReadTimeout
        self.idleTimeout = idleTimeout
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startReading(context: context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        startReading(context: context)
        context.fireChannelActive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelAll()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        cancelAll()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .idle:
            startReading(context: context)
        case .processing:
            state = .processing(bytesPending: true)
        case .readingRequest:
            break
        }
        context.fireChannelRead(data)
    }

    public func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? Event else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch event {
        case .requestHeadReceived:
            headerTimer?.cancel()
            headerTimer = nil
        case .requestReceived:
            cancelAll()
            state = .processing(bytesPending: false)
        case .responseSent:
            cancelAll()
            if case .processing(bytesPending: true) = state {
                startReading(context: context)
            } else {
                state = .idle
                idleTimer = schedule(after: idleTimeout, context: context)
            }
        }
        promise?.succeed(())
    }

    private func startReading(context: ChannelHandlerContext) {
        cancelAll()
        state = .readingRequest
        headerTimer = schedule(after: headerTimeout, context: context)
        readTimer = schedule(after: requestReadTimeout, context: context)
    }

    private func schedule(after delay: TimeAmount, context: ChannelHandlerContext) -> Scheduled<Void> {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        return context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            loopBound.value.close(promise: nil)
        }
    }

    private func cancelAll() {
        headerTimer?.cancel()
        readTimer?.cancel()
        idleTimer?.cancel()
        headerTimer = nil
        readTimer = nil
        idleTimer = nil
    }
}
