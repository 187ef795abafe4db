import NIOCore
import KubeAPIAuthCore

/// Closes connections that are too slow or idle too long (slowloris protection), with the Go
/// service's semantics:
/// - from connection start, or from the first byte of a later request, the request head must
///   arrive within `headerTimeout` and the whole request within `requestReadTimeout`;
/// - between requests on a keep-alive connection, the next request must start within `idleTimeout`;
/// - on HTTP/2 (``http2Started()``), the first stream must open within `headerTimeout` and, once
///   the last open stream has closed, the next within `idleTimeout`. Past that the connection is
///   asked to wind down (`ChannelShouldQuiesceEvent`: NIO's connection manager sends GOAWAY and a
///   PING, and closes once the client acknowledges it), and is closed `headerTimeout` later if it
///   is still open. Streams themselves have no deadline (watches and exec last as long as they
///   do). Before this, an HTTP/2 connection with no stream open was never closed, not even after
///   a connection error had been answered with GOAWAY.
///
/// It sits first in the pipeline and sees raw bytes; ``HTTPRequestHandler`` tells it directly
/// (same channel, same event loop) where requests begin and end.
///
/// Why deadlines and one periodic check instead of a timer per deadline: scheduling and
/// cancelling two or three NIO timers per request was a fifth of the CPU of a review (heap
/// inserts and removals in the event loop's timer queue). Now a request costs one clock read
/// and two stores, and each connection has one timer that fires every ``checkInterval``
/// (a tenth of the shortest timeout, between 10 ms and 1 s). A connection is therefore closed
/// at most one interval after its deadline.
public final class ConnectionTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private enum State {
        case readingRequest
        case processing(bytesPending: Bool)
        case idle
        /// HTTP/2: how many streams are open, and whether the connection was asked to wind down.
        case http2(openStreams: Int, closing: Bool)
    }

    private let headerTimeout: TimeAmount
    private let requestReadTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    let checkInterval: TimeAmount
    private var state = State.readingRequest
    /// When the request head must have arrived (`.distantFuture` once it has).
    private var headDeadline = NIODeadline.distantFuture
    /// When the request must be complete, or when an idle connection must have started its next one.
    private var deadline = NIODeadline.distantFuture
    private var context: ChannelHandlerContext?
    private var check: Scheduled<Void>?
    /// Told once, when the connection's first request head is complete (the connection cap keeps
    /// such connections and makes room by closing ones that never got that far).
    private var onFirstHead: (@Sendable () -> Void)?

    public init(
        headerTimeout: TimeAmount, requestReadTimeout: TimeAmount, idleTimeout: TimeAmount, onFirstHead: (@Sendable () -> Void)? = nil
    ) {
        self.onFirstHead = onFirstHead
        self.headerTimeout = headerTimeout
        self.requestReadTimeout = requestReadTimeout
        self.idleTimeout = idleTimeout
        let shortest = min(headerTimeout, requestReadTimeout, idleTimeout)
        self.checkInterval = min(max(.nanoseconds(shortest.nanoseconds / 10), .milliseconds(10)), .seconds(1))
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .idle:
            startReading(now: context.eventLoop.now)
        case .processing:
            state = .processing(bytesPending: true)
        case .readingRequest, .http2:
            break
        }
        context.fireChannelRead(data)
    }

    /// The request head is complete: the header timeout no longer applies.
    public func requestHeadReceived() {
        headDeadline = .distantFuture
        firstHeadReceived()
    }

    /// HTTP/2 was negotiated: the deadlines follow the connection's streams from now on.
    public func http2Started() {
        guard let now = context?.eventLoop.now else { return }
        state = .http2(openStreams: 0, closing: false)
        headDeadline = .distantFuture
        deadline = now + headerTimeout
    }

    /// An HTTP/2 stream opened (a request head arrived): no deadline while one is open.
    public func http2StreamOpened() {
        guard case .http2(let open, let closing) = state else { return }
        state = .http2(openStreams: open + 1, closing: closing)
        deadline = .distantFuture
        firstHeadReceived()
    }

    /// An HTTP/2 stream closed: with none left open, the idle timeout runs (or, once the
    /// connection was asked to wind down, the time it has left to do so).
    public func http2StreamClosed() {
        guard case .http2(let open, let closing) = state, let now = context?.eventLoop.now else { return }
        let remaining = max(open - 1, 0)
        state = .http2(openStreams: remaining, closing: closing)
        if remaining == 0 { deadline = now + (closing ? headerTimeout : idleTimeout) }
    }

    private func firstHeadReceived() {
        if let onFirstHead {
            self.onFirstHead = nil
            onFirstHead()
        }
    }

    /// The request is complete: no read deadline while it is answered (a scrypt check may queue).
    public func requestReceived() {
        state = .processing(bytesPending: false)
        headDeadline = .distantFuture
        deadline = .distantFuture
    }

    /// The answer is written: wait for the next request (already started if bytes came meanwhile).
    public func responseSent() {
        guard let now = context?.eventLoop.now else { return }
        if case .processing(bytesPending: true) = state {
            startReading(now: now)
        } else {
            state = .idle
            headDeadline = .distantFuture
            deadline = now + idleTimeout
        }
    }

    private func start(context: ChannelHandlerContext) {
        guard check == nil else { return }
        startReading(now: context.eventLoop.now)
        scheduleCheck(context: context)
    }

    private func startReading(now: NIODeadline) {
        state = .readingRequest
        headDeadline = now + headerTimeout
        deadline = now + requestReadTimeout
    }

    private func scheduleCheck(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.assumeIsolated().scheduleTask(in: checkInterval) {
            let (handler, context) = loopBound.value
            guard handler.check != nil else { return }
            let now = context.eventLoop.now
            if now >= min(handler.headDeadline, handler.deadline) {
                if case .http2(let open, closing: false) = handler.state {
                    // Idle HTTP/2: GOAWAY first (the manager above sends it), closed at the next deadline.
                    handler.state = .http2(openStreams: open, closing: true)
                    handler.deadline = now + handler.headerTimeout
                    handler.scheduleCheck(context: context)
                    context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                } else {
                    handler.check = nil
                    context.close(promise: nil)
                }
            } else {
                handler.scheduleCheck(context: context)
            }
        }
    }

    private func stop() {
        check?.cancel()
        check = nil
        context = nil
    }
}
