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
import KubeAPIAuthCore
#endif

/// The HTTP listeners as a `Service`: binds every configured address, serves until graceful
/// shutdown, then stops accepting, closes idle keep-alive connections, lets in-flight requests
/// finish, and when the drain timeout is reached closes the connections that are still open.
public final class HTTPServer: Service {
    public struct BindError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Sets up an accepted connection's pipeline (TLS included); told when the connection's first
    /// request head is complete through the closure it is given.
    public typealias ConnectionInitializer = @Sendable (_ channel: any Channel, _ onFirstHead: @escaping @Sendable () -> Void) throws -> Void

    let configuration: ServerConfiguration
    let initializeConnection: ConnectionInitializer
    let group: any EventLoopGroup
    let logger: Logger
    let onListening: @Sendable ([SocketAddress]) -> Void
    /// What the listener is for, in its log lines (`reviews` or `metrics`).
    let purpose: String
    /// Every accepted connection until it closes: the cap, and what the drain timeout ends.
    private let connections: ConnectionSlots

    /// A listener whose connections `initializeConnection` sets up (each door brings its own).
    public init(
        configuration: ServerConfiguration, group: any EventLoopGroup, logger: Logger, purpose: String,
        onListening: @escaping @Sendable ([SocketAddress]) -> Void = { _ in }, initializeConnection: @escaping ConnectionInitializer
    ) {
        self.purpose = purpose
        self.connections = ConnectionSlots(capacity: configuration.maxConnections)
        self.configuration = configuration
        self.initializeConnection = initializeConnection
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
            let remaining = connections.open
            logger.warning("drain timeout reached; closing remaining connections", metadata: ["connections": "\(remaining.count)"])
            // All at once: a close waits (up to TLSSettings.closeNotifyWait) for a client that may
            // never answer, and one such client must not hold up the others.
            for channel in remaining { channel.close(promise: nil) }
            if let eventLoop = remaining.first?.eventLoop {
                try? await EventLoopFuture.andAllComplete(remaining.map(\.closeFuture), on: eventLoop).get()
            }
        }
    }

    /// Binds one address; `nil` when it is a default address of a family this host lacks.
    private func bind(_ address: ListenAddress) async throws -> (channel: any Channel, quiesce: ServerQuiescingHelper)? {
        let quiesce = ServerQuiescingHelper(group: group)
        let initializeConnection = self.initializeConnection
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelInitializer { channel in
                // At the connection limit the oldest connection that has not sent a whole request
                // head makes room; when there is none, the new one is closed before any byte is read.
                let slot: ConnectionSlots.Slot
                switch self.connections.admit(channel) {
                case .refused:
                    return channel.close()
                case .admitted(let admitted, let evicted):
                    slot = admitted
                    evicted?.close(promise: nil)
                }
                channel.closeFuture.whenComplete { _ in self.connections.remove(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    try initializeConnection(channel, slot.markHeadSeen)
                }
            }
            // TCP level (IPPROTO_TCP): `.socketOption(.tcp_nodelay)` would be SOL_SOCKET option 1,
            // SO_DEBUG, which needs CAP_NET_ADMIN; as pods run us (uid 1000, no capabilities) it
            // fails and NIO closes every accepted connection.
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
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

    /// Stops accepting and waits for the open connections to finish: `true` when they did, `false`
    /// when the drain timeout came first. (A task group racing a sleep against the futures would
    /// not do: it waits for all its children, and awaiting a future ignores cancellation.)
    private func drain(_ listeners: [(channel: any Channel, quiesce: ServerQuiescingHelper)]) async -> Bool {
        let eventLoop = listeners[0].channel.eventLoop
        let futures = listeners.map { listener in
            let promise = listener.channel.eventLoop.makePromise(of: Void.self)
            listener.quiesce.initiateShutdown(promise: promise)
            return promise.futureResult
        }
        let timeout = TimeAmount(configuration.drainTimeout)
        return await withCheckedContinuation { continuation in
            let outcome = FirstOutcome(continuation)
            let timer = eventLoop.scheduleTask(in: timeout) { outcome.resume(false) }
            EventLoopFuture.andAllComplete(futures, on: eventLoop).whenComplete { _ in
                timer.cancel()
                outcome.resume(true)
            }
        }
    }

    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// Resumes a continuation with whichever outcome comes first; later ones are ignored.
private final class FirstOutcome: Sendable {
    private let continuation: Mutex<CheckedContinuation<Bool, Never>?>

    init(_ continuation: CheckedContinuation<Bool, Never>) {
        self.continuation = Mutex(continuation)
    }

    func resume(_ value: Bool) {
        continuation.withLock { continuation in
            continuation?.resume(returning: value)
            continuation = nil
        }
    }
}
