// What a NIO-based server costs on this machine before doing anything of its own: the floors
// `bench/proxy` and `bench/run` measure beside nginx and the service (docs/benchmarks.md).
//
//   nio-floor-bench relay|http|requests --listen PORT --upstream PORT --cert PEM --key PEM --ca PEM [--loops N]
//   nio-floor-bench answer --listen PORT --body-bytes N [--loops N]
//
// The proxy's floors terminate TLS like `kube-api-auth proxy` (NIOSSL) and open a verified TLS
// connection to the upstream on the client connection's event loop, one per client connection:
// relay: the bytes each side reads are written to the other as they come (no HTTP at all): NIO's
//        socket channels, NIOSSL and the kernel.
// http:  NIO's HTTP/1 server codec on the client's connection (the response encoder and request
//        decoder the proxy has, without a pipelining handler), its client codec on the upstream's,
//        each request and response part passed across unchanged (no authentication, no header
//        rewriting, no policy): what an HTTP-aware NIO proxy costs before its own work.
// requests: requests as in `http`, responses passed on as bytes (no response decoder or encoder):
//        the most that forwarding responses by their framing alone could save (it would still
//        read each response's head and framing).
// The webhook's floor, plain HTTP like `bench/run`:
// answer: the webhook's codecs (NIO's request decoder, response encoder), every request answered
//        `200` with a fixed JSON body of N bytes once its end is read: no JSON, no review.
// Not shipped; no error handling beyond closing the connection.
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

enum Mode: String { case relay, http, requests, answer }

struct Options {
    var mode: Mode
    var listen: Int
    var upstream = 0
    var cert = ""
    var key = ""
    var ca = ""
    var bodyBytes = 0
    var loops = 2

    init(_ arguments: [String]) throws {
        guard let first = arguments.first, let mode = Mode(rawValue: first) else { throw Usage() }
        var values: [String: String] = [:]
        var rest = arguments.dropFirst()
        while let flag = rest.popFirst() {
            guard flag.hasPrefix("--"), let value = rest.popFirst() else { throw Usage() }
            values[String(flag.dropFirst(2))] = value
        }
        guard let listen = values["listen"].flatMap(Int.init) else { throw Usage() }
        (self.mode, self.listen) = (mode, listen)
        if let loops = values["loops"].flatMap(Int.init), loops > 0 { self.loops = loops }
        if mode == .answer {
            guard let bodyBytes = values["body-bytes"].flatMap(Int.init), (0...1 << 20).contains(bodyBytes) else { throw Usage() }
            self.bodyBytes = bodyBytes
            return
        }
        guard let upstream = values["upstream"].flatMap(Int.init), let cert = values["cert"], let key = values["key"], let ca = values["ca"]
        else { throw Usage() }
        (self.upstream, self.cert, self.key, self.ca) = (upstream, cert, key, ca)
    }

    struct Usage: Error, CustomStringConvertible {
        var description: String {
            """
            usage: nio-floor-bench relay|http|requests --listen PORT --upstream PORT --cert PEM --key PEM --ca PEM [--loops N]
                   nio-floor-bench answer --listen PORT --body-bytes N [--loops N]
            """
        }
    }
}

/// Answers every request `200` with the same JSON body once the request's end is read; the
/// answers of one read burst are flushed together.
final class FixedAnswer: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let head: HTTPResponseHead
    private let body: ByteBuffer

    init(bodyBytes: Int) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(bodyBytes))
        head = HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)
        body = ByteBuffer(repeating: UInt8(ascii: " "), count: bodyBytes)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// One side of a pair: what its channel reads is written (converted) on the partner's channel,
/// flushed at the end of each read burst; reads wait while the partner cannot write; either side
/// closing closes the other. Typed end to end: no existential or dynamic cast per part (those
/// alone cost several microseconds per request in a first version).
final class Glue<In, Out>: ChannelDuplexHandler {
    typealias InboundIn = In
    typealias OutboundIn = Out
    typealias OutboundOut = Out

    fileprivate var forward: ((In) -> Void)?
    fileprivate var partner: (any GlueEnd)?
    private var context: ChannelHandlerContext?
    private var readHeld = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
        forward = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        forward?(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.flush()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.isWritable == false {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeRead() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.close()
        partner = nil
        forward = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    fileprivate func write(_ value: Out) {
        context?.write(wrapOutboundOut(value), promise: nil)
    }
}

protocol GlueEnd: AnyObject {
    func flush()
    var isWritable: Bool { get }
    func resumeRead()
    func close()
}

extension Glue: GlueEnd {
    func flush() { context?.flush() }

    var isWritable: Bool { context?.channel.isWritable ?? true }

    func resumeRead() {
        guard readHeld, let context else { return }
        readHeld = false
        context.read()
    }

    func close() {
        context?.flush()
        context?.close(promise: nil)
    }
}

/// Pairs two sides: `a` reads `A` and writes `B`, `b` reads `C` and writes `D`.
func pair<A, B, C, D>(_ a: Glue<A, B>, _ b: Glue<C, D>, aToB: @escaping (A) -> D, bToA: @escaping (C) -> B) {
    a.forward = { [weak b] in b?.write(aToB($0)) }
    b.forward = { [weak a] in a?.write(bToA($0)) }
    a.partner = b
    b.partner = a
}

/// A line on standard output, written at once (`print` holds it in a buffer when the output is a file).
func say(_ line: String) {
    var line = line + "\n"
    line.withUTF8 { bytes in _ = write(1, bytes.baseAddress, bytes.count) }
}

@main
struct ProxyFloorBench {
    static func main() async throws {
        let options: Options
        do {
            options = try Options(Array(CommandLine.arguments.dropFirst()))
        } catch {
            say("\(error)")
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.loops)
        if options.mode == .answer {
            let bodyBytes = options.bodyBytes
            try await serve(group: group, options: options) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HTTPResponseEncoder())
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
                    try channel.pipeline.syncOperations.addHandler(FixedAnswer(bodyBytes: bodyBytes))
                }
            }
            return
        }
        let certificates = try NIOSSLCertificate.fromPEMFile(options.cert)
        let serverTLS = try NIOSSLContext(
            configuration: .makeServerConfiguration(
                certificateChain: certificates.map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: options.key, format: .pem))))
        var clientConfiguration = TLSConfiguration.makeClientConfiguration()
        clientConfiguration.trustRoots = .file(options.ca)
        let clientTLS = try NIOSSLContext(configuration: clientConfiguration)
        let upstreamPort = options.upstream
        let mode = options.mode

        // The accepted channel is registered (and reads) only once this future completes: the
        // upstream connection and both sides' handlers are in place before a byte is read.
        try await serve(group: group, options: options) { client in
            let upstream = ClientBootstrap(group: client.eventLoop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: clientTLS, serverHostname: nil))
                        switch mode {
                        case .relay, .answer: break
                        case .http: try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        case .requests: try channel.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
                        }
                    }
                }
                .connect(host: "127.0.0.1", port: upstreamPort)
            return client.eventLoop.makeCompletedFuture {
                try client.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverTLS))
                switch mode {
                case .relay, .answer: break
                case .http:
                    // The codecs the proxy's client side has (no pipelining handler).
                    try client.pipeline.syncOperations.addHandler(HTTPResponseEncoder())
                    try client.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
                case .requests: try client.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
                }
            }.flatMap { upstream }.flatMapThrowing { upstreamChannel in
                let request = { (part: HTTPServerRequestPart) -> HTTPClientRequestPart in
                    switch part {
                    case .head(let head): .head(head)
                    case .body(let body): .body(.byteBuffer(body))
                    case .end(let trailers): .end(trailers)
                    }
                }
                let response = { (part: HTTPClientResponsePart) -> HTTPServerResponsePart in
                    switch part {
                    case .head(let head): .head(head)
                    case .body(let body): .body(.byteBuffer(body))
                    case .end(let trailers): .end(trailers)
                    }
                }
                let sides: (client: any ChannelHandler, upstream: any ChannelHandler)
                switch mode {
                case .relay, .answer:  // (`answer` never comes here)
                    let (clientSide, upstreamSide) = (Glue<ByteBuffer, ByteBuffer>(), Glue<ByteBuffer, ByteBuffer>())
                    pair(clientSide, upstreamSide, aToB: { $0 }, bToA: { $0 })
                    sides = (clientSide, upstreamSide)
                case .http:
                    let (clientSide, upstreamSide) = (
                        Glue<HTTPServerRequestPart, HTTPServerResponsePart>(), Glue<HTTPClientResponsePart, HTTPClientRequestPart>()
                    )
                    pair(clientSide, upstreamSide, aToB: request, bToA: response)
                    sides = (clientSide, upstreamSide)
                case .requests:
                    let (clientSide, upstreamSide) = (Glue<HTTPServerRequestPart, ByteBuffer>(), Glue<ByteBuffer, HTTPClientRequestPart>())
                    pair(clientSide, upstreamSide, aToB: request, bToA: { $0 })
                    sides = (clientSide, upstreamSide)
                }
                try client.pipeline.syncOperations.addHandler(sides.client)
                try upstreamChannel.pipeline.syncOperations.addHandler(sides.upstream)
            }.flatMapErrorThrowing { error in
                say("connection not set up: \(error)")
                throw error
            }
        }
    }

    /// Listens on `options.listen` until the process ends, each accepted channel set up by `initializer`.
    static func serve(
        group: MultiThreadedEventLoopGroup, options: Options, initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) async throws {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer(initializer)
            .bind(host: "127.0.0.1", port: options.listen)
            .get()
        say("listening on 127.0.0.1:\(options.listen) (\(options.mode.rawValue))")
        try await server.closeFuture.get()
    }
}
