import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import Logging
import NIOCore
import NIOPosix
import RancherAuth
import ServiceLifecycle
import Testing

@Suite("HTTP server lifecycle")
struct HTTPServerTests {
    @Test("At the drain timeout the connections still open are closed, before the server's run returns")
    func drainTimeoutClosesConnections() async throws {
        let logs = LogCapture()
        let store = try loadedStore()
        let core = AuthenticationCore(
            store: store, clock: FixedClock(instant: Timestamp(seconds: 1_800_000_000)),
            workers: ExpensiveHashWorkers(threads: 1, maxQueued: 1), effects: ReadOnlySourceEffects(), logger: logs.logger())
        var configuration = ServerConfiguration(listen: [ListenAddress(host: "127.0.0.1", port: 0)])
        configuration.drainTimeout = .milliseconds(200)
        let limits = configuration
        let (ports, portsContinuation) = AsyncStream.makeStream(of: Int.self)
        let (heads, headsContinuation) = AsyncStream.makeStream(of: Void.self)
        let endpoints = Endpoints(webhook: WebhookDoor(core: core), store: store)
        // The service's own pipeline, also telling the test when the request head has been read:
        // a drain started before that would find an idle connection and close it at once.
        let server = HTTPServer(
            configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, logger: logs.logger(), purpose: "reviews",
            onListening: { addresses in
                portsContinuation.yield(addresses.first?.port ?? 0)
                portsContinuation.finish()
            },
            initializeConnection: { channel, onFirstHead in
                try channel.pipeline.syncOperations.addServiceHTTPHandlers(
                    endpoints: endpoints, maxBodyBytes: limits.maxBodyBytes, maxHeaderBytes: limits.maxHeaderBytes,
                    headerTimeout: limits.headerTimeout, requestReadTimeout: limits.requestReadTimeout, idleTimeout: limits.idleTimeout,
                    onFirstHead: {
                        onFirstHead()
                        headsContinuation.yield()
                    })
            })
        let group = ServiceGroup(configuration: .init(services: [server], logger: logs.logger()))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port).get()
            // A request that never completes: the drain cannot finish it.
            try await client.writeAndFlush(ByteBuffer(string: "POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")).get()
            var headIterator = heads.makeAsyncIterator()
            _ = await headIterator.next()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            // The server closed it itself: the event loops (shared, still running) would keep it open.
            let closed = client.eventLoop.makePromise(of: Void.self)
            client.closeFuture.cascade(to: closed)
            client.eventLoop.scheduleTask(in: .seconds(5)) { closed.fail(ChannelError.ioOnClosedChannel) }
            try await closed.futureResult.get()
        }
        #expect(logs.text.contains("drain timeout reached; closing remaining connections"))
        #expect(logs.text.contains("connections=1"))
    }
}
