import NIOCore
import NIOHTTP1
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// One HTTP/1.x connection on top of NIO's request decoder (llhttp): collects a request (capping
/// its body), hands it to ``Endpoints`` and writes the answer as one encoded buffer.
///
/// It replaces NIO's `HTTPServerPipelineHandler`, `HTTPServerProtocolErrorHandler` and
/// `HTTPResponseEncoder` on this service's connections, doing what they do here:
/// - pipelined requests are answered strictly in order: while an answer is pending (a queued
///   scrypt check) later request parts are held and no more bytes are read;
/// - a request the decoder rejects gets `400` and the connection closes;
/// - on shutdown (`ChannelShouldQuiesceEvent`) an idle connection closes at once and a busy one
///   after its answer;
/// - keep-alive follows the request (`Connection` header, HTTP version).
///
/// Why: the answers are small and complete before the first byte goes out, and passing three
/// response parts through three handlers and building `HTTPHeaders` cost about a fifth of the
/// CPU of a review. One buffer, one write.
public final class HTTPRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private enum State {
        case waitingForHead
        case readingBody(Endpoints.Request, ByteBuffer)
        /// The request is with the endpoints; its answer is not written yet.
        case answering
        /// The connection is closing (an answer with `Connection: close`, a rejected request).
        case closing
    }

    private let endpoints: Endpoints
    private let maxBodyBytes: Int
    /// The connection's timeout handler, told directly where requests begin and end.
    private let timeouts: ConnectionTimeoutHandler?
    private var state = State.waitingForHead
    /// Parts of pipelined requests that arrived while an answer was pending.
    private var held = CircularBuffer<HTTPServerRequestPart>()
    /// A `read` asked for while an answer was pending, to pass on once it is written.
    private var readHeld = false
    private var quiescing = false
    private var keepAlive = true
    private var version = HTTPVersion.http1_1
    private var isHeadRequest = false

    public init(endpoints: Endpoints, maxBodyBytes: Int, timeouts: ConnectionTimeoutHandler?) {
        self.endpoints = endpoints
        self.maxBodyBytes = maxBodyBytes
        self.timeouts = timeouts
    }

    private var isAnswering: Bool {
        if case .answering = state { return true }
        return false
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .closing = state { return }
        if isAnswering || !held.isEmpty {
            held.append(part)
            return
        }
        process(part, context: context)
    }

    public func read(context: ChannelHandlerContext) {
        if isAnswering || !held.isEmpty {
            readHeld = true
        } else {
            context.read()
        }
    }

    private func process(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            timeouts?.requestHeadReceived()
            keepAlive = head.isKeepAlive && !quiescing
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
            state = .readingBody(request, context.channel.allocator.buffer(capacity: wantsBody ? 512 : 0))
        case .body(var chunk):
            guard case .readingBody(let request, var body) = state else { return }
            guard body.readableBytes + chunk.readableBytes <= maxBodyBytes else {
                reject(context: context)
                return
            }
            state = .answering  // Avoid a copy-on-write of `body` while appending.
            body.writeBuffer(&chunk)
            state = .readingBody(request, body)
        case .end:
            guard case .readingBody(let request, let body) = state else { return }
            state = .answering
            timeouts?.requestReceived()
            let result = body.withUnsafeReadableBytes { bytes in
                endpoints.handle(request, body: bytes)
            }
            switch result {
            case .now(let answer):
                respond(answer, context: context)
            case .later(let completion):
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                completion.whenComplete(on: context.eventLoop) { answer in
                    let (handler, context) = loopBound.value
                    handler.respond(answer, context: context)
                    handler.processHeld(context: context)
                }
            }
        }
    }

    /// After a pending answer: the requests that queued up behind it, then reading resumes.
    private func processHeld(context: ChannelHandlerContext) {
        while !isAnswering, let part = held.popFirst() {
            if case .closing = state { held.removeAll(); return }
            process(part, context: context)
        }
        if readHeld, !isAnswering, held.isEmpty {
            readHeld = false
            context.read()
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // The decoder cannot continue after a parse error. Say so if no answer has started.
        switch state {
        case .waitingForHead, .readingBody:
            state = .closing
            let answer = HTTPResponseEncoding.encode(
                HTTPAnswer(status: .badRequest), version: .http1_1, keepAlive: false, omitBody: false,
                allocator: context.channel.allocator)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(answer)).whenComplete { _ in channel.close(promise: nil) }
        case .answering, .closing:
            state = .closing
            context.close(promise: nil)
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        quiescing = true
        switch state {
        case .waitingForHead where held.isEmpty:
            state = .closing
            context.close(promise: nil)
        case .waitingForHead, .readingBody, .answering:
            keepAlive = false
        case .closing:
            break
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
        keepAlive = false
        respond(
            .status(.payloadTooLarge, reason: "RequestEntityTooLarge", message: "request body exceeds \(maxBodyBytes) bytes"),
            context: context)
    }

    private func respond(_ answer: HTTPAnswer, context: ChannelHandlerContext) {
        guard context.channel.isActive else {
            state = .closing
            return
        }
        let buffer = HTTPResponseEncoding.encode(
            answer, version: version, keepAlive: keepAlive, omitBody: isHeadRequest, allocator: context.channel.allocator)
        timeouts?.responseSent()
        if keepAlive {
            state = .waitingForHead
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        } else {
            state = .closing
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

/// Encodes a complete response into one buffer: status line, headers, body.
enum HTTPResponseEncoding {
    static func encode(
        _ answer: HTTPAnswer, version: HTTPVersion, keepAlive: Bool, omitBody: Bool, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 128 + answer.body.count)
        buffer.writeStaticString(version.minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeString(String(answer.status.code))
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(answer.status.reasonPhrase)
        if let contentType = answer.contentType {
            buffer.writeStaticString("\r\ncontent-type: ")
            buffer.writeString(contentType)
        }
        buffer.writeStaticString("\r\ncontent-length: ")
        buffer.writeString(String(answer.body.count))
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
        if !omitBody { buffer.writeBytes(answer.body) }
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
