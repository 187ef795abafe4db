import KubeClient
import Logging
import RancherAuth
import ServiceLifecycle

/// Mirrors ClusterAuthTokens, ClusterUserAttributes, Secrets and the refresh ConfigMap of one
/// namespace from the Kubernetes API into the ``RecordStore``.
public final class KubernetesSource: Service {
    public let client: KubeClient
    public let namespace: String
    public let cache: KubernetesRecordCache
    let logger: Logger

    public init(client: KubeClient, namespace: String, store: RecordStore, clock: any WallClock, logger: Logger) {
        self.client = client
        self.namespace = namespace
        self.cache = KubernetesRecordCache(store: store, clock: clock)
        self.logger = logger
        let cache = self.cache
        store.setDetailsProvider { cache.describe() }
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.cache.runPublisher() }
            group.addTask { await self.reflector(.clusterAuthTokens, ClusterAuthToken.self) { self.cache.apply($0) }.run() }
            group.addTask { await self.reflector(.clusterUserAttributes, ClusterUserAttribute.self) { self.cache.apply($0) }.run() }
            group.addTask { await self.reflector(.secrets, HashSecret.self) { self.cache.apply($0) }.run() }
            group.addTask { await self.reflector(.configMaps, RefreshConfigMap.self) { self.cache.apply($0) }.run() }
            // Runs until graceful shutdown, then stops the reflectors.
            try? await gracefulShutdown()
            group.cancelAll()
        }
        try? await client.shutdown()

    }

    private func reflector<Record: Decodable & Sendable>(
        _ kind: RecordKind, _ type: Record.Type, apply: @escaping @Sendable (KubernetesRecordCache.Change<Record>) -> Void
    ) -> Reflector<Record> {
        Reflector(kind: kind, namespace: namespace, client: client, cache: cache, apply: apply, logger: logger)
    }
}
