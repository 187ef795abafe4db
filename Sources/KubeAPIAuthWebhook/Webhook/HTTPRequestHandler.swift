import NIOCore
import NIOHTTP1
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// One HTTP/1.x connection of the webhook on top of NIO's request decoder (llhttp): collects a
/// request (capping its body), hands it to ``Endpoints`` and writes the answer as one encoded
/// buffer. The connection's rules — pipelined requests answered strictly in order while no more
/// bytes are read, `400` and close for a request the decoder rejects, quiescing, the timeouts'
/// moments — are ``HTTPServerConnection``'s, shared with the proxy; this handler translates.
///
/// It replaces NIO's `HTTPServerPipelineHandler`, `HTTPServerProtocolErrorHandler` and
/// `HTTPResponseEncoder` on this service's connections. Why: the answers are small and complete
/// before the first byte goes out, and passing three response parts through three handlers and
/// building `HTTPHeaders` cost about a fifth of the CPU of a review. One buffer, one write.
public final class HTTPRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// The request being read (its body collected), if any.
    private struct Reading {
        var request: Endpoints.Request
        var body: ByteBuffer
    }

    private let endpoints: Endpoints
    private let maxBodyBytes: Int
    /// The connection's timeout handler, told directly where requests begin and end.
    private let timeouts: ConnectionTimeoutHandler?
    private var connection = HTTPServerConnection(readDeadline: .wholeRequest, pipelineLimit: 0)
    private var reading: Reading?
    private var keepAlive = true
    private var version = HTTPVersion.http1_1
    private var isHeadRequest = false

    public init(endpoints: Endpoints, maxBodyBytes: Int, timeouts: ConnectionTimeoutHandler?) {
        self.endpoints = endpoints
        self.maxBodyBytes = maxBodyBytes
        self.timeouts = timeouts
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .deliver(let part, let milestone) = connection.received(unwrapInboundIn(data)) else { return }
        timeouts?.note(milestone)
        process(part, context: context)
    }

    public func read(context: ChannelHandlerContext) {
        if connection.readRequested(doorPaused: false) { context.read() }
    }

    private func process(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            keepAlive = head.isKeepAlive && !connection.quiescing
            version = head.version
            isHeadRequest = head.method == .HEAD
            let request = Endpoints.Request(
                method: head.method, uri: head.uri, authorization: head.headers.first(name: "authorization"),
                source: peer(context))
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > maxBodyBytes {
                reject(context: context)
                return
            }
            let wantsBody = request.acceptsBody
            if wantsBody, head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(
                    wrapOutboundOut(ByteBuffer(string: "HTTP/\(head.version.major).\(head.version.minor) 100 Continue\r\n\r\n")),
                    promise: nil)
            }
            reading = Reading(request: request, body: context.channel.allocator.buffer(capacity: wantsBody ? 512 : 0))
        case .body(var chunk):
            guard var current = reading else { return }
            guard current.body.readableBytes + chunk.readableBytes <= maxBodyBytes else {
                reject(context: context)
                return
            }
            reading = nil  // Avoid a copy-on-write of the body while appending.
            current.body.writeBuffer(&chunk)
            reading = current
        case .end:
            guard let current = reading else { return }
            reading = nil
            let result = current.body.withUnsafeReadableBytes { bytes in
                endpoints.handle(current.request, body: bytes)
            }
            switch result {
            case .now(let answer):
                respond(answer, context: context)
            case .later(let completion):
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                completion.whenComplete(on: context.eventLoop) { answer in
                    let (handler, context) = loopBound.value
                    handler.respond(answer, context: context)
                }
            }
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // The decoder cannot continue after a parse error. Say so if no answer is pending.
        reading = nil
        switch connection.parseError(doorCanAnswer: true) {
        case .answerBadRequest:
            let answer = HTTPResponseEncoding.encode(
                HTTPAnswer(status: .badRequest), version: .http1_1, keepAlive: false, omitBody: false,
                allocator: context.channel.allocator)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(answer)).whenComplete { _ in channel.close(promise: nil) }
        case .close:
            context.close(promise: nil)
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch connection.quiesce() {
        case .closeNow: context.close(promise: nil)
        case .closeAfterAnswer: keepAlive = false
        }
    }

    /// The peer as `ip:port` (or `-`), computed once per connection.
    private var cachedPeer: String?
    private func peer(_ context: ChannelHandlerContext) -> String {
        if let cachedPeer { return cachedPeer }
        let text = PeerAddress(of: context.channel).text
        cachedPeer = text
        return text
    }

    private func reject(context: ChannelHandlerContext) {
        reading = nil
        keepAlive = false
        respond(
            .status(.payloadTooLarge, reason: "RequestEntityTooLarge", message: "request body exceeds \(maxBodyBytes) bytes"),
            context: context)
    }

    private func respond(_ answer: HTTPAnswer, context: ChannelHandlerContext) {
        guard context.channel.isActive else {
            connection.close()
            return
        }
        let buffer = HTTPResponseEncoding.encode(
            answer, version: version, keepAlive: keepAlive, omitBody: isHeadRequest, allocator: context.channel.allocator)
        switch connection.answerFinished(keepAlive: keepAlive) {
        case .close:
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
        case .proceed:
            timeouts?.responseSent()
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            processHeld(context: context)
        }
    }

    private var processingHeld = false

    /// The requests that queued up behind an answered one, in order, then reading resumes. An
    /// answer given while they are processed does not start a nested round (the loop goes on).
    private func processHeld(context: ChannelHandlerContext) {
        guard !processingHeld else { return }
        processingHeld = true
        while let (part, milestone) = connection.nextHeld() {
            timeouts?.note(milestone)
            process(part, context: context)
        }
        processingHeld = false
        if connection.takeHeldRead(doorPaused: false) { context.read() }
    }
}

/// Encodes a complete response into one buffer: status line, headers, body.
enum HTTPResponseEncoding {
    static func encode(
        _ answer: HTTPAnswer, version: HTTPVersion, keepAlive: Bool, omitBody: Bool, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 128 + answer.bodyCount)
        buffer.writeStaticString(version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeString(String(answer.status.code))
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(answer.status.reasonPhrase)
        if let contentType = answer.contentType {
            buffer.writeStaticString("\r\ncontent-type: ")
            buffer.writeString(contentType)
        }
        buffer.writeStaticString("\r\ncontent-length: ")
        buffer.writeString(String(answer.bodyCount))
        // Header values are ours; the only one built from request data (a redirect's Location,
        // from the request's query) is dropped if it holds control characters.
        for (name, value) in answer.headers where value.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) {
            buffer.writeStaticString("\r\n")
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
        }
        if !keepAlive {
            buffer.writeStaticString("\r\nconnection: close")
        } else if version.minor == 0 {
            buffer.writeStaticString("\r\nconnection: keep-alive")
        }
        buffer.writeStaticString("\r\n\r\n")
        if !omitBody { answer.writeBody(to: &buffer) }
        return buffer
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// The handlers of one HTTP connection of the service, after TLS if any: timeouts (first, so
    /// they also bound a TLS handshake's plaintext phase), NIO's request decoder with the header
    /// limits, and ``HTTPRequestHandler``.
    public func addServiceHTTPHandlers(
        endpoints: Endpoints, maxBodyBytes: Int, maxHeaderBytes: Int,
        headerTimeout: TimeAmount, requestReadTimeout: TimeAmount, idleTimeout: TimeAmount,
        onFirstHead: (@Sendable () -> Void)? = nil
    ) throws {
        let timeouts = ConnectionTimeoutHandler(
            headerTimeout: headerTimeout, requestReadTimeout: requestReadTimeout, idleTimeout: idleTimeout, onFirstHead: onFirstHead)
        try addHandler(timeouts)
        try addHandler(
            ByteToMessageHandler(
                HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: .service(maxHeaderBytes: maxHeaderBytes))))
        try addHandler(HTTPRequestHandler(endpoints: endpoints, maxBodyBytes: maxBodyBytes, timeouts: timeouts))
    }
}
