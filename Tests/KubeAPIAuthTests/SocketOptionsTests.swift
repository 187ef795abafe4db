import KubeClient
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

@testable import KubeAPIAuth
@testable import KubeAPIAuthCore
@testable import KubeAPIAuthHTTP
@testable import KubeAPIAuthWebhook
@testable import KubeAPIAuthProxy

#if canImport(Glibc)
import Glibc
#endif

/// The socket options of the connections the service makes and accepts, read back from the kernel
/// (`getsockopt` through NIO). `TCP_NODELAY` is TCP-level option 1; the same number at the socket
/// level is `SO_DEBUG`, which needs CAP_NET_ADMIN: set there by mistake, it silently succeeds as
/// root and makes every accepted connection fail as pods run the service (uid 1000, no capabilities).
@Suite("Socket options")
struct SocketOptionsTests {
    struct Options: Equatable, CustomStringConvertible {
        var noDelay: SocketOptionValue
        var debug: SocketOptionValue

        init(of channel: any Channel) throws {
            let options = try #require(channel.syncOptions)
            noDelay = try options.getOption(.tcpOption(.tcp_nodelay))
            debug = try options.getOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_DEBUG)))
        }

        var description: String { "TCP_NODELAY=\(noDelay) SO_DEBUG=\(debug)" }
    }

    @Test("An accepted connection has TCP_NODELAY on (TCP level) and SO_DEBUG off")
    func acceptedConnection() async throws {
        let (ports, portsContinuation) = AsyncStream.makeStream(of: Int.self)
        let (accepted, acceptedContinuation) = AsyncStream.makeStream(of: Result<Options, any Error>.self)
        // The proxy's kind of listener: the test's initializer runs after the child options are applied.
        let server = HTTPServer(
            configuration: ServerConfiguration(listen: [ListenAddress(host: "127.0.0.1", port: 0)]),
            group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            purpose: "test",
            onListening: { addresses in
                portsContinuation.yield(addresses.first?.port ?? 0)
                portsContinuation.finish()
            },
            initializeConnection: { channel, _ in
                acceptedContinuation.yield(Result { try Options(of: channel) })
                acceptedContinuation.finish()
            })
        let group = ServiceGroup(configuration: .init(services: [server], logger: Logger(label: "test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var portIterator = ports.makeAsyncIterator()
            let port = try #require(await portIterator.next())
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            var acceptedIterator = accepted.makeAsyncIterator()
            let options = try #require(await acceptedIterator.next()).get()
            #expect(options.noDelay != 0, "\(options)")
            #expect(options.debug == 0, "\(options)")
            try await client.close()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test("A proxy connection to the upstream has TCP_NODELAY on (TCP level) and SO_DEBUG off")
    func upstreamConnection() async throws {
        // A listener standing in for kube-apiserver: the TCP connection is all this test needs.
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(listener.localAddress?.port)
        let configuration = KubeConfig(server: "https://127.0.0.1:\(port)", credentials: .token("proxy-token"))
        let client = try KubeClient(configuration: configuration, logger: Logger(label: "test"))
        let pool = UpstreamPool(target: try UpstreamTarget(configuration: configuration, client: client, origin: "test"))
        let channel = try await pool.connect(on: MultiThreadedEventLoopGroup.singleton.next()).get()
        let options = try await channel.eventLoop.submit { try Options(of: channel) }.get()
        #expect(options.noDelay != 0, "\(options)")
        #expect(options.debug == 0, "\(options)")
        try await channel.close()
        try await listener.close()
        try await client.shutdown()
    }
}
