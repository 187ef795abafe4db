import NIOCore
import NIOHTTP1

/// Collects one request (capping its body), hands it to ``Endpoints`` and writes the answer.
/// NIO's `HTTPServerPipelineHandler` in front of it serialises pipelined requests and takes care
/// of quiescing on shutdown.
public final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case waitingForHead
        case readingBody(Endpoints.Request, ByteBuffer)
        /// The body was too large; the 413 is out and the connection is closing.
        case rejected
        case responding
    }

    private let endpoints: Endpoints
    private let maxBodyBytes: Int
    private var state = State.waitingForHead
    private var keepAlive = true
    private var version = HTTPVersion.http1_1

    public init(endpoints: Endpoints, maxBodyBytes: Int) {
        self.endpoints = endpoints
        self.maxBodyBytes = maxBodyBytes
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            context.triggerUserOutboundEvent(ConnectionTimeoutHandler.Event.requestHeadReceived, promise: nil)
            keepAlive = head.isKeepAlive
            version = head.version
            let request = Endpoints.Request(
                method: head.method, uri: head.uri, authorization: head.headers.first(name: "authorization"),
                source: peer(context))
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > maxBodyBytes {
                reject(context: context)
                return
            }
            let wantsBody = Endpoints.acceptsBody(method: head.method, uri: head.uri)
            if wantsBody, head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            state = .readingBody(request, context.channel.allocator.buffer(capacity: wantsBody ? 512 : 0))
        case .body(var chunk):
            guard case .readingBody(let request, var body) = state else { return }
            guard body.readableBytes + chunk.readableBytes <= maxBodyBytes else {
                reject(context: context)
                return
            }
            state = .responding  // Avoid a copy-on-write of `body` while appending.
            body.writeBuffer(&chunk)
            state = .readingBody(request, body)
        case .end:
            guard case .readingBody(let request, let body) = state else { return }
            state = .responding
            context.triggerUserOutboundEvent(ConnectionTimeoutHandler.Event.requestReceived, promise: nil)
            let result = body.withUnsafeReadableBytes { bytes in
                endpoints.handle(request, body: bytes, eventLoop: context.eventLoop)
            }
            switch result {
            case .answer(let answer):
                write(answer, context: context)
            case .pending(let future):
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                future.hop(to: context.eventLoop).whenComplete { result in
                    let (handler, context) = loopBound.value
                    switch result {
                    case .success(let answer): handler.write(answer, context: context)
                    case .failure: handler.write(.unavailable("verification failed"), context: context)
                    }
                }
            }
        }
    }

    /// The peer as `ip:port` (or `-`), computed once per connection.
    private var cachedPeer: String?
    private func peer(_ context: ChannelHandlerContext) -> String {
        if let cachedPeer { return cachedPeer }
        var text = "-"
        if let address = context.channel.remoteAddress, let ip = address.ipAddress, let port = address.port {
            text = ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        cachedPeer = text
        return text
    }

    private func reject(context: ChannelHandlerContext) {
        state = .rejected
        keepAlive = false
        write(
            .status(.payloadTooLarge, reason: "RequestEntityTooLarge", message: "request body exceeds \(maxBodyBytes) bytes"),
            context: context)
    }

    private func write(_ answer: HTTPAnswer, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        if let contentType = answer.contentType { headers.add(name: "content-type", value: contentType) }
        headers.add(name: "content-length", value: String(answer.body.count))
        for (name, value) in answer.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: answer.status, headers: headers))), promise: nil)
        if !answer.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: answer.body)))), promise: nil)
        }
        let keepAlive = self.keepAlive
        let done = context.writeAndFlushAndReturnFuture(wrapOutboundOut(.end(nil)))
        if case .rejected = state {} else { state = .waitingForHead }
        context.triggerUserOutboundEvent(ConnectionTimeoutHandler.Event.responseSent, promise: nil)
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

extension ChannelHandlerContext {
    fileprivate func writeAndFlushAndReturnFuture(_ data: NIOAny) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        writeAndFlush(data, promise: promise)
        return promise.futureResult
    }
}
