import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// An in-repo Kubernetes API server for tests: real HTTP (optionally TLS), the REST and watch
/// semantics of kube-apiserver for namespaced resources, bearer-token checks and fault injection.
///
/// Start it, point a kubeconfig at it (``kubeconfig(namespace:)``), and drive faults from the test:
/// ``stop()``/``start()`` (API server down / restarted on the same port), ``failRequests(count:status:)``,
/// ``responseDelay``, ``state`` (`dropAllWatches()`, `compact()`, direct object access).
public final class KubeAPITestServer: Sendable {
    public struct Configuration: Sendable {
        /// When set, every request must carry `Authorization: Bearer <token>`.
        public var token: String?
        /// Serve HTTPS with this identity (its certificate goes into ``kubeconfig(namespace:)``).
        public var tls: SelfSignedIdentity?
        /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
        public var bookmarkInterval: TimeAmount = .seconds(1)

        public init(token: String? = "test-server-token", tls: SelfSignedIdentity? = nil) {
            self.token = token
            self.tls = tls
        }
    }

    struct Faults {
        var failuresLeft = 0
        var failureStatus = 503
        var delay: TimeAmount = .zero
    }

    public let state: APIServerState
    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let faults = Mutex(Faults())
    private let listener = Mutex<(channel: (any Channel)?, port: Int)>((nil, 0))
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let requestCounter = Atomic<Int>(0)
    private let writtenCounter = Atomic<Int>(0)
    private let seen = Mutex<[SeenRequest]>([])
    private let tlsContext: NIOSSLContext?

    public init(
        configuration: Configuration = Configuration(), state: APIServerState = APIServerState(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        self.configuration = configuration
        self.state = state
        self.group = group
        self.tlsContext = try configuration.tls?.makeServerContext()
    }

    public var port: Int { listener.withLock { $0.port } }
    public var url: String { "\(configuration.tls == nil ? "http" : "https")://127.0.0.1:\(port)" }
    /// Requests answered so far (including failed and watch requests).
    public var requestCount: Int { requestCounter.load(ordering: .relaxed) }
    /// Whole answers (not watches) whose last byte the kernel has taken: a client (or proxy) that
    /// stops reading holds this back.
    public var answersWritten: Int { writtenCounter.load(ordering: .relaxed) }

    func answerWritten() { writtenCounter.add(1, ordering: .relaxed) }

    /// Listens on `host:port` (port 0: any; after ``stop()``, the previous port is reused).
    @discardableResult
    public func start(host: String = "127.0.0.1", port requested: Int? = nil) async throws -> Int {
        let port = requested ?? listener.withLock { $0.port }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls = self.tlsContext { try pipeline.addHandler(NIOSSLServerHandler(context: tls)) }
                    // Pod exec over WebSocket (v5.channel.k8s.io) and a raw echo protocol, for the
                    // proxy's upgrade splice; other requests reach the API handler.
                    try pipeline.configureHTTPServerPipeline(
                        withServerUpgrade: (upgraders: [self.execUpgrader(), EchoUpgrader(server: self)], completionHandler: { _ in }),
                        withErrorHandling: true)
                    try pipeline.addHandler(APIConnectionHandler(server: self))
                    self.track(channel)
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        let bound = channel.localAddress?.port ?? port
        listener.withLock { $0 = (channel, bound) }
        return bound
    }

    /// Closes the listener and every connection: clients see refused connections until ``start()``.
    public func stop() async throws {
        let channel = listener.withLock { state -> (any Channel)? in
            defer { state.channel = nil }
            return state.channel
        }
        try? await channel?.close()
        state.dropAllWatches()
        let open = connections.withLock { $0.values }
        for connection in open { try? await connection.close() }
    }

    /// The next `count` requests are answered with `status` (500 or 503) and a `Status` body.
    public func failRequests(count: Int, status: Int = 503) {
        faults.withLock {
            $0.failuresLeft = count
            $0.failureStatus = status
        }
    }

    /// Delay added before every answer.
    public var responseDelay: TimeAmount {
        get { faults.withLock { $0.delay } }
        set { faults.withLock { $0.delay = newValue } }
    }

    /// A kubeconfig for this server (bearer token; the serving certificate as CA when TLS is on).
    public func kubeconfig(namespace: String = "cattle-system") -> String {
        var cluster = "    server: \(url)\n"
        if let certificateAuthorityPEM = configuration.tls?.certificatePEM {
            cluster += "    certificate-authority-data: \(Data(certificateAuthorityPEM.utf8).base64EncodedString())\n"
        }
        let user = configuration.token.map { "    token: \($0)\n" } ?? "    {}\n"
        return """
            apiVersion: v1
            kind: Config
            clusters:
            - name: kube-api-test-server
              cluster:
            \(cluster)users:
            - name: test-user
              user:
            \(user)contexts:
            - name: test
              context:
                cluster: kube-api-test-server
                user: test-user
                namespace: \(namespace)
            current-context: test

            """
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        connections.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in _ = self.connections.withLock { $0.removeValue(forKey: id) } }
    }

    /// A request head as it arrived (for checking what a proxy forwarded).
    public struct SeenRequest: Sendable {
        public var method: String
        public var uri: String
        public var headers: [(name: String, value: String)]
    }

    /// The request heads received, oldest first (at most the last 50,000).
    public var seenRequests: [SeenRequest] { seen.withLock { $0 } }

    func record(_ head: HTTPRequestHead) {
        let entry = SeenRequest(method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) })
        seen.withLock { seen in
            if seen.count >= 50_000 { seen.removeFirst(10_000) }
            seen.append(entry)
        }
    }

    /// Whether `headers` carry this server's token (when it wants one).
    func authorized(_ headers: HTTPHeaders) -> Bool {
        guard let token = configuration.token else { return true }
        return headers.first(name: "authorization") == "Bearer \(token)"
    }

    /// Authentication and injected faults, before routing.
    func answer(_ request: APIRequest) -> (APIResponse, TimeAmount) {
        requestCounter.add(1, ordering: .relaxed)
        let (fail, delay) = faults.withLock { faults -> (Int?, TimeAmount) in
            guard faults.failuresLeft > 0 else { return (nil, faults.delay) }
            faults.failuresLeft -= 1
            return (faults.failureStatus, faults.delay)
        }
        if let status = fail {
            let reason = status == 503 ? "ServiceUnavailable" : "InternalError"
            return (.failure(APIStatusError(code: status, reason: reason, message: "injected failure")), delay)
        }
        if !authorized(request.headers) {
            return (.failure(.unauthorized), delay)
        }
        return (APIRouter(state: state).handle(request), delay)
    }
}

/// One HTTP connection of the test server.
final class APIConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: KubeAPITestServer
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(server: KubeAPITestServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            server.record(head)
            self.head = head
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            let components = URLComponents(string: head.uri)
            var query: [String: String] = [:]
            for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
            let request = APIRequest(
                method: head.method, path: components?.percentEncodedPath ?? head.uri, query: query, headers: head.headers,
                body: Data(body.readableBytesView))
            let (response, delay) = server.answer(request)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let keepAlive = head.isKeepAlive
            let respond = {
                let (handler, context) = loopBound.value
                handler.respond(response, keepAlive: keepAlive, context: context)
            }
            if delay == .zero {
                respond()
            } else {
                context.eventLoop.assumeIsolated().scheduleTask(in: delay, respond)
            }
        }
    }

    private func respond(_ response: APIResponse, keepAlive: Bool, context: ChannelHandlerContext) {
        switch response {
        case .full(let status, let body, let contentType):
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: contentType)
            headers.add(name: "content-length", value: String(body.count))
            if !keepAlive { headers.add(name: "connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            let channel = context.channel
            let server = self.server
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                server.answerWritten()
                if !keepAlive { channel.close(promise: nil) }
            }
        case .watch(let resource, let namespace, let name, let resourceVersion, let bookmarks, let timeoutSeconds):
            startWatch(
                resource, namespace: namespace, name: name, from: resourceVersion, bookmarks: bookmarks, timeout: timeoutSeconds, context: context)
        }
    }

    private func startWatch(
        _ resource: ResourceType, namespace: String?, name: String?, from resourceVersion: Int64?, bookmarks: Bool, timeout: Int?,
        context: ChannelHandlerContext
    ) {
        let channel = context.channel
        let eventLoop = context.eventLoop
        // Events are queued on the connection's event loop in commit order. The watcher is
        // registered before the response head is written, and the queued events run after it.
        let sink = WatchSink(
            deliver: { data in
                eventLoop.execute {
                    channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(channel.allocator.buffer(bytes: data))), promise: nil)
                }
            },
            finish: { eventLoop.execute { channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil) } },
            abort: { eventLoop.execute { channel.close(promise: nil) } })
        let id = server.state.watch(resource, namespace: namespace, name: name, resourceVersion: resourceVersion, sink: sink)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "transfer-encoding", value: "chunked")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        guard let id else { return }
        let state = server.state
        channel.closeFuture.whenComplete { _ in state.endWatch(id) }
        var bookmarkTask: RepeatedTask?
        if bookmarks {
            let interval = server.configuration.bookmarkInterval
            bookmarkTask = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                state.bookmark(watcher: id, resource: resource)
            }
            channel.closeFuture.whenComplete { [bookmarkTask] _ in bookmarkTask?.cancel() }
        }
        if let timeout, timeout > 0 {
            let timeoutTask = eventLoop.scheduleTask(in: .seconds(Int64(timeout))) { [bookmarkTask] in
                bookmarkTask?.cancel()
                state.endWatch(id)
                sink.finish()
            }
            channel.closeFuture.whenComplete { _ in timeoutTask.cancel() }
        }
    }
}
