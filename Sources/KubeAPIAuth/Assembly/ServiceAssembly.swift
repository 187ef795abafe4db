import KubeClient
import Logging
import NIOCore
import NIOPosix
import RancherAuth
import ServiceLifecycle
import UnixSignals
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// Turns a ``ServiceConfiguration`` into the running service: the record source, the
/// ``AuthenticationCore`` with its workers, and the long-running parts behind the front doors,
/// each a `Service` owned by one `ServiceGroup`.
///
/// A front door is added by the caller (``webhookServers()`` for `serve`), so another door can
/// reuse everything else. In the group the background parts start first and stop last, in this
/// order of stopping: the doors drain, then the TLS reloader and scrypt workers stop, then pending
/// writes are flushed, then the watches stop, and finally the Kubernetes client is closed.
public struct ServiceAssembly {
    public let configuration: ServiceConfiguration
    public let store: RecordStore
    public let core: AuthenticationCore
    public let metrics: ServiceMetrics
    let logger: Logger
    /// The long-running parts behind the doors, in start order.
    let background: [any Service]
    /// The serving identity shared by every TLS listener (reloaded on change).
    let tls: TLSContextBox?

    /// - Throws: ``ConfigurationError`` naming the flag or file that cannot be used.
    public init(_ configuration: ServiceConfiguration, logger: Logger, clock: any WallClock = SystemClock()) throws {
        self.configuration = configuration
        self.logger = logger
        // Before the records are read: their large buffers are mapped on their own (see there).
        Malloc.keepLargeBlocksMapped()
        let metrics = ServiceMetrics()
        self.metrics = metrics
        // Log lines are written by the queue's thread while the group runs; it stops last.
        var background: [any Service] = [LogDrain(queue: .standardError)]
        metrics.onScrape { $0.exportDroppedLogLines(of: .standardError) }
        let store: RecordStore
        let effects: any ReviewEffectsSink
        let unreadable: @Sendable () -> [RecordFinding]
        switch configuration.records {
        case .directory(let path, let pollInterval):
            let directory = RecordsDirectory(
                path: path, namespace: configuration.namespace, emergencySecretName: configuration.emergencySecretName)
            store = RecordStore(source: "records directory \(directory.path)")
            let source = RecordsDirectorySource(
                directory: directory, store: store, clock: clock, pollInterval: pollInterval, metrics: metrics, logger: logger)
            do {
                try source.reload()
            } catch {
                throw ConfigurationError("--records-dir: \(error)")
            }
            logger.info("records directory is read-only: lastUsedAt, needsRefresh and hash migration are not written")
            effects = ReadOnlySourceEffects()
            unreadable = { source.unreadableFindings() }
            background.append(source)
        case .kubernetes(let kubeconfig):
            let client = try Self.makeKubeClient(kubeconfig: kubeconfig, logger: logger)
            store = RecordStore(source: "Kubernetes API \(client.configuration.server), namespace \(configuration.namespace)")
            let writer = UsageWriter(
                client: client, namespace: configuration.namespace, store: store, lastUsedInterval: configuration.lastUsedInterval,
                metrics: metrics, logger: logger)
            effects = writer
            // The client is closed only after everything that uses it has stopped.
            background.append(ClosingService { try await client.shutdown() })
            let source = KubernetesSource(
                client: client, namespace: configuration.namespace, store: store, clock: clock,
                snapshotFile: configuration.snapshotFile, snapshotInterval: configuration.snapshotInterval,
                emergencySecretName: configuration.emergencySecretName, metrics: metrics, logger: logger)
            unreadable = { source.cache.unreadableFindings() }
            background.append(source)
            background.append(writer)
        }
        background.append(RecordCensusService(store: store, clock: clock, unreadable: unreadable, metrics: metrics, logger: logger))
        let workers = ExpensiveHashWorkers(threads: configuration.scryptWorkers, maxQueued: configuration.scryptQueue)
        background.append(workers)
        core = AuthenticationCore(
            store: store, clock: clock, workers: workers, effects: effects,
            verifiedCache: VerifiedTokenCache(capacity: configuration.verifiedCacheSize),
            failures: FailureCounter(maxFailures: configuration.maxFailures, window: configuration.failureWindow),
            maxTokenBytes: configuration.maxTokenBytes, metrics: metrics,
            audit: AuditLog(logger: logger, enabled: configuration.auditLog), logger: logger)
        if let settings = configuration.tls {
            let box: TLSContextBox
            do {
                box = TLSContextBox(try settings.makeContext())
            } catch {
                throw ConfigurationError("\(error)")
            }
            tls = box
            background.append(TLSReloader(settings: settings, box: box, interval: configuration.tlsReloadInterval, logger: logger))
        } else {
            tls = nil
        }
        self.store = store
        self.background = background
    }

    /// The webhook door's listeners (and the separate metrics listener, when configured).
    public func webhookServers() throws -> [any Service] {
        var server = listenerConfiguration()
        server.maxBodyBytes = configuration.maxBodyBytes
        let webhook = WebhookDoor(core: core)
        var servers: [any Service] = []
        if let metricsServer = metricsServer(purpose: "metrics") { servers.append(metricsServer) }
        servers.append(
            HTTPServer(
                configuration: server,
                endpoints: Endpoints(webhook: webhook, store: store, metrics: configuration.metricsListen == nil ? metrics : nil),
                group: MultiThreadedEventLoopGroup.singleton, logger: logger))
        return servers
    }

    /// The proxy door: its TLS listeners (HTTP/1.1 and HTTP/2), the health and metrics listener
    /// when configured, and what closes the upstream connections after the listeners stop.
    public func proxyServers(_ proxy: ProxyConfiguration) throws -> [any Service] {
        guard tls != nil else {
            throw ConfigurationError("the proxy serves TLS only: give --tls-cert-file and --tls-private-key-file")
        }
        let upstreamConfiguration = try Self.loadKubeConfig(proxy.upstreamKubeconfig, hint: " (the proxy's upstream)")
        let origin = proxy.upstreamKubeconfig.map { "--kubeconfig \($0)" } ?? "in-cluster configuration"
        do {
            try UpstreamTarget.check(upstreamConfiguration, origin: origin)
        } catch {
            throw ConfigurationError(error.description)
        }
        let client = try Self.makeKubeClient(upstreamConfiguration, logger: logger)
        let target: UpstreamTarget
        do {
            target = try UpstreamTarget(configuration: upstreamConfiguration, client: client, origin: origin)
        } catch {
            try? client.syncShutdown()
            throw ConfigurationError(error.description)
        }
        let pool = UpstreamPool(target: target, maxIdlePerLoop: proxy.maxIdleUpstreamConnections)
        let door = ProxyDoor(core: core, upstream: target, passThrough: proxy.passThrough, logger: logger, auditEnabled: configuration.auditLog)
        let server = listenerConfiguration()
        var services: [any Service] = [
            ClosingService {
                await pool.closeIdle(); try await client.shutdown()
            }
        ]
        if let metricsServer = metricsServer(purpose: "health and metrics") { services.append(metricsServer) }
        let logger = self.logger
        let proxyServer = server
        services.append(
            HTTPServer(configuration: server, group: MultiThreadedEventLoopGroup.singleton, logger: logger, purpose: "proxy") {
                channel, onFirstHead in
                try ProxyPipeline.configure(channel, server: proxyServer, door: door, pool: pool, logger: logger, onFirstHead: onFirstHead)
            })
        return services
    }

    /// The listeners' limits, timeouts and TLS from the configuration.
    private func listenerConfiguration() -> ServerConfiguration {
        var server = ServerConfiguration(listen: configuration.listen)
        server.maxHeaderBytes = configuration.maxHeaderBytes
        server.maxConnections = configuration.maxConnections
        server.headerTimeout = TimeAmount(configuration.headerTimeout)
        server.requestReadTimeout = TimeAmount(configuration.readTimeout)
        server.idleTimeout = TimeAmount(configuration.idleTimeout)
        server.drainTimeout = configuration.drainTimeout
        server.tls = tls
        return server
    }

    /// The plain-HTTP listener for `/metrics`, `/livez` and `/readyz` on `--metrics-listen`, if given.
    private func metricsServer(purpose: String) -> HTTPServer? {
        guard let metricsListen = configuration.metricsListen else { return nil }
        var server = listenerConfiguration()
        server.listen = [metricsListen]
        server.tls = nil
        return HTTPServer(
            configuration: server, endpoints: Endpoints(webhook: WebhookDoor(core: core), store: store, metrics: metrics, servesReviews: false),
            group: MultiThreadedEventLoopGroup.singleton, logger: logger, purpose: purpose)
    }

    /// Runs the service with the proxy door until SIGTERM or SIGINT (then drains and stops).
    public func runProxy(_ proxy: ProxyConfiguration) async throws {
        try await serviceGroup(doors: try proxyServers(proxy)).run()
    }

    /// Runs the service with the webhook door until SIGTERM or SIGINT (then drains and stops).
    public func runWebhook() async throws {
        try await serviceGroup(doors: try webhookServers()).run()
    }

    /// One group running the background parts and then `doors`, until SIGTERM or SIGINT.
    public func serviceGroup(doors: [any Service]) -> ServiceGroup {
        ServiceGroup(
            configuration: .init(services: background + doors, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    }

    /// `kubeconfig` (a path), else the in-cluster service account.
    private static func makeKubeClient(kubeconfig: String?, logger: Logger) throws -> KubeClient {
        try makeKubeClient(loadKubeConfig(kubeconfig, hint: " (or serve a directory of records with --records-dir DIR)"), logger: logger)
    }

    static func loadKubeConfig(_ kubeconfig: String?, hint: String = "") throws -> KubeConfig {
        try KubeConfig.load(orInCluster: kubeconfig, hint: hint)
    }

    private static func makeKubeClient(_ configuration: KubeConfig, logger: Logger) throws -> KubeClient {
        do {
            return try KubeClient(configuration: configuration, logger: logger)
        } catch {
            throw ConfigurationError("--kubeconfig: \(error)")
        }
    }
}

/// Holds a resource open for as long as the group runs and closes it when the group stops. Put
/// before the services that use the resource, it closes after all of them have stopped.
struct ClosingService: Service {
    let close: @Sendable () async throws -> Void

    func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }
}
