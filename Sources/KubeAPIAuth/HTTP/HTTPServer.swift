import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The HTTP listeners as a `Service`: binds every configured address, serves until graceful
/// shutdown, then stops accepting, lets in-flight requests finish (up to the drain timeout) and
/// closes idle keep-alive connections.
public final class HTTPServer: Service {
    public struct BindError: Error, CustomStringConvertible {
        public let description: String
    }

    let configuration: ServerConfiguration
    let endpoints: Endpoints
    let group: any EventLoopGroup
    let logger: Logger
    let onListening: @Sendable ([SocketAddress]) -> Void
    /// What the listener is for, in its log lines (`reviews` or `metrics`).
    let purpose: String
    private let openConnections = Atomic<Int>(0)

    public init(
        configuration: ServerConfiguration, endpoints: Endpoints, group: any EventLoopGroup, logger: Logger,
        purpose: String = "reviews", onListening: @escaping @Sendable ([SocketAddress]) -> Void = { _ in }
    ) {
        self.purpose = purpose
        self.configuration = configuration
        self.endpoints = endpoints
        self.group = group
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        var listeners: [(channel: any Channel, quiesce: ServerQuiescingHelper)] = []
        do {
            for address in configuration.listen {
                if let listener = try await bind(address) { listeners.append(listener) }
            }
        } catch {
            for listener in listeners { try? await listener.channel.close() }
            throw error
        }
        guard !listeners.isEmpty else {
            throw BindError(description: "no listen address could be bound (\(configuration.listen.map(\.description).joined(separator: ", ")))")
        }
        let addresses = listeners.compactMap { $0.channel.localAddress }
        for address in addresses {
            logger.info("listening", metadata: ["address": "\(Self.describe(address))", "purpose": "\(purpose)"])
        }
        onListening(addresses)

        // Serve until graceful shutdown (SIGTERM/SIGINT) or cancellation.
        try? await gracefulShutdown()
        logger.info("shutting down: draining in-flight requests", metadata: ["timeout": "\(configuration.drainTimeout)"])
        let drained = await drain(listeners)
        if drained {
            logger.info("drained")
        } else {
            logger.warning("drain timeout reached; closing remaining connections")
        }
    }

    /// Binds one address; `nil` when it is a default address of a family this host lacks.
    private func bind(_ address: ListenAddress) async throws -> (channel: any Channel, quiesce: ServerQuiescingHelper)? {
        let quiesce = ServerQuiescingHelper(group: group)
        let configuration = self.configuration
        let endpoints = self.endpoints
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelInitializer { channel in
                // Over the connection limit: close at once, before any byte is read.
                let open = self.openConnections.add(1, ordering: .relaxed).newValue
                channel.closeFuture.whenComplete { _ in self.openConnections.subtract(1, ordering: .relaxed) }
                guard open <= configuration.maxConnections else {
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls = configuration.tls {
                        try pipeline.addHandler(NIOSSLServerHandler(context: tls.current))
                    }
                    // Timers start when the handler is added, so they also bound the TLS handshake.
                    try pipeline.addServiceHTTPHandlers(
                        endpoints: endpoints, maxBodyBytes: configuration.maxBodyBytes,
                        maxHeaderBytes: configuration.maxHeaderBytes, headerTimeout: configuration.headerTimeout,
                        requestReadTimeout: configuration.requestReadTimeout, idleTimeout: configuration.idleTimeout)
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
        do {
            let channel = try await bootstrap.bind(host: address.host, port: address.port).get()
            return (channel, quiesce)
        } catch let error as IOError where Self.isMissingAddressFamily(error.errnoCode) {
            logger.warning(
                "listen address skipped: this host has no such address family",
                metadata: ["address": "\(address)", "error": "\(error)"])
            return nil
        } catch {
            throw BindError(description: "cannot listen on \(address): \(error)")
        }
    }

    static func isMissingAddressFamily(_ code: CInt) -> Bool {
        code == EAFNOSUPPORT || code == EADDRNOTAVAIL || code == EPROTONOSUPPORT
    }

    private func drain(_ listeners: [(channel: any Channel, quiesce: ServerQuiescingHelper)]) async -> Bool {
        let futures = listeners.map { listener in
            let promise = listener.channel.eventLoop.makePromise(of: Void.self)
            listener.quiesce.initiateShutdown(promise: promise)
            return promise.futureResult
        }
        let timeout = configuration.drainTimeout
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for future in futures { try? await future.get() }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
