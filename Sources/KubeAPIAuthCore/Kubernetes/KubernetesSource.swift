import KubeClient
import Logging
import RancherAuth
import ServiceLifecycle
import Foundation
import Synchronization

/// Mirrors ClusterAuthTokens, ClusterUserAttributes, Secrets and the refresh ConfigMap of one
/// namespace from the Kubernetes API into the ``RecordStore``.
public final class KubernetesSource: Service {
    public let client: KubeClient
    public let namespace: String
    public let cache: KubernetesRecordCache
    let store: RecordStore
    let clock: any WallClock
    let snapshotFile: String?
    let snapshotInterval: Duration
    /// The emergency-access Secret, watched on its own.
    let emergencySecretName: String
    let logger: Logger
    private let fallback = Mutex<SnapshotFile.Contents?>(nil)
    private let lastSnapshotWrite = Mutex<Timestamp?>(nil)

    /// - Parameters:
    ///   - snapshotFile: where the last-known-good records are kept; loaded at start and used only
    ///     while the API cannot be listed; rewritten at most every `snapshotInterval` after changes.
    public init(
        client: KubeClient, namespace: String, store: RecordStore, clock: any WallClock, snapshotFile: String? = nil,
        snapshotInterval: Duration = .seconds(10), emergencySecretName: String = EmergencyAccess.defaultSecretName,
        metrics: ServiceMetrics? = nil, logger: Logger
    ) {
        self.emergencySecretName = emergencySecretName
        self.client = client
        self.namespace = namespace
        self.cache = KubernetesRecordCache(store: store, clock: clock, metrics: metrics, logger: logger)
        self.store = store
        self.clock = clock
        self.snapshotFile = snapshotFile
        self.snapshotInterval = snapshotInterval
        self.logger = logger
        let cache = self.cache
        store.setDetailsProvider { cache.describe() }
        metrics?.onScrape { [weak self] metrics in
            cache.exportMetrics(metrics)
            if let written = self?.lastSnapshotWrite.withLock({ $0 }) {
                metrics.setSnapshotAge(seconds: Double(clock.now().seconds - written.seconds))
            }
        }
    }

    public func run() async throws {
        loadSnapshot()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.cache.runPublisher() }
            group.addTask { await self.cache.runCarryExpiry() }
            if let path = snapshotFile {
                group.addTask { await self.writeSnapshots(to: path) }
            }
            group.addTask { await self.reflector(.clusterAuthTokens, ClusterAuthToken.self) { self.cache.apply($0) }.run() }
            group.addTask { await self.reflector(.clusterUserAttributes, ClusterUserAttribute.self) { self.cache.apply($0) }.run() }
            group.addTask { await self.reflector(.secrets, HashSecret.self) { self.cache.apply($0) }.run() }
            group.addTask { await self.reflector(.configMaps, RefreshConfigMap.self) { self.cache.apply($0) }.run() }
            group.addTask {
                let name = self.emergencySecretName
                var reflector = self.reflector(.emergencySecret, OpaqueSecret.self) { self.cache.applyEmergency($0, name: name) }
                reflector.fieldSelector = "metadata.name=\(name)"
                await reflector.run()
            }
            // Runs until graceful shutdown, then stops the reflectors.
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// A reflector for one kind, feeding the cache and reporting to `/readyz` and the metrics.
    private func reflector<Record: Decodable & Sendable>(
        _ kind: RecordKind, _ type: Record.Type, apply: @escaping @Sendable (ReflectorEvent<Record>) -> Void
    ) -> Reflector<Record> {
        let cache = self.cache
        var reflector = Reflector(resource: kind.resource, namespace: namespace, client: client, logger: logger, handle: apply)
        reflector.observer.listed = { _, _ in
            cache.noteListed()
            cache.updateStatus(kind) {
                $0.synced = true
                $0.fromSnapshot = false
                $0.confirmedAt = .now
                $0.lastError = nil
            }
        }
        reflector.observer.listFailed = { self.useSnapshot() }
        reflector.observer.watching = { watching in cache.updateStatus(kind) { $0.watching = watching } }
        reflector.observer.confirmed = {
            cache.updateStatus(kind) {
                $0.confirmedAt = .now
                $0.lastError = nil
            }
        }
        reflector.observer.failed = { error in cache.updateStatus(kind) { $0.lastError = error } }
        reflector.observer.watchRestarted = { cache.metrics?.watchRestarted(kind) }
        reflector.observer.relisting = { cache.metrics?.relisted(kind) }
        reflector.observer.unreadable = { cache.applyUnreadable($0, kind: kind) }
        return reflector
    }

    private func loadSnapshot() {
        guard let path = snapshotFile, FileManager.default.fileExists(atPath: path) else { return }
        do {
            let contents = try SnapshotFile.load(path: path, namespace: namespace)
            fallback.withLock { $0 = contents }
            logger.info(
                "snapshot file loaded; used only while the API server cannot be listed",
                metadata: ["path": "\(path)", "writtenAt": "\(contents.writtenAt)", "tokens": "\(contents.clusterauthtokens.count)"])
        } catch {
            logger.error("snapshot file rejected and not used", metadata: ["path": "\(path)", "problem": "\(error)"])
        }
    }

    /// The API cannot be listed: serve the last-known-good records (once) until it can.
    private func useSnapshot() {
        guard
            let contents = fallback.withLock({ state -> SnapshotFile.Contents? in
                defer { state = nil }
                return state
            })
        else { return }
        logger.warning(
            "API server cannot be listed: serving from the snapshot file until it can",
            metadata: ["writtenAt": "\(contents.writtenAt)"])
        cache.seed(from: contents.snapshot(), writtenAt: contents.writtenAtTime)
    }

    /// Writes the live records after changes, at most once per `snapshotInterval`.
    private func writeSnapshots(to path: String) async {
        var lastWrite: ContinuousClock.Instant?
        for await _ in cache.livePublications {
            if let lastWrite {
                let next = lastWrite + snapshotInterval
                if next > .now {
                    do {
                        try await Task.sleep(until: next)
                    } catch {
                        return
                    }
                }
            }
            guard let snapshot = store.snapshot else { continue }
            do {
                let now = clock.now()
                try SnapshotFile.write(SnapshotFile.Contents(namespace: namespace, writtenAt: now, snapshot: snapshot), to: path)
                lastSnapshotWrite.withLock { $0 = now }
                logger.debug("snapshot file written", metadata: ["path": "\(path)", "tokens": "\(snapshot.tokens.count)"])
            } catch {
                cache.metrics?.snapshotWriteFailed()
                logger.error("snapshot file not written", metadata: ["problem": "\(error)"])
            }
            lastWrite = .now
        }
    }
}
