import Foundation
import KubeClient
import Logging
import RancherAuth
import ServiceLifecycle
import Synchronization

/// Carries out the writes successful reviews ask for, off the request path, never failing a
/// review, and without 409 storms between replicas (rancher/rancher#48986):
/// - `lastUsedAt`: merge patches (no precondition, so they cannot conflict), coalesced per token
///   and written at most once per `lastUsedInterval`, skipped when the cluster already has a newer value;
/// - `needsRefresh: true`: a merge patch conditional on the user record's resourceVersion, so a
///   refresh Rancher finished meanwhile is not undone;
/// - legacy `hash` migration: Secret created (or its data replaced), then the field cleared with a
///   resourceVersion precondition, retried on conflict; exactly once across replicas.
public final class UsageWriter: ReviewEffectsSink, Service {
    private struct Pending {
        var lastUsed: [String: Timestamp] = [:]
        var refresh: [String: String] = [:]  // user name -> resourceVersion seen by the review
        var migrate: Set<String> = []
    }

    let client: KubeClient
    let namespace: String
    let store: RecordStore
    let lastUsedInterval: Duration
    let metrics: ServiceMetrics?
    let logger: Logger
    private let pending = Mutex(Pending())
    private let wake: AsyncStream<Void>.Continuation
    private let wakeups: AsyncStream<Void>

    public init(
        client: KubeClient, namespace: String, store: RecordStore, lastUsedInterval: Duration, metrics: ServiceMetrics? = nil,
        logger: Logger
    ) {
        self.metrics = metrics
        self.client = client
        self.namespace = namespace
        self.store = store
        self.lastUsedInterval = lastUsedInterval
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func submit(_ effects: SideEffects, for decision: Decision) {
        guard let token = decision.token else { return }
        var urgent = false
        pending.withLock { pending in
            if let usedAt = effects.touchLastUsedAt {
                pending.lastUsed[token.name] = max(pending.lastUsed[token.name] ?? usedAt, usedAt)
            }
            if effects.requestUserRefresh, case .authenticated(let user) = decision.outcome {
                pending.refresh[user.attribute.name] = user.attribute.metadata.resourceVersion ?? ""
                urgent = true
            }
            if effects.migrateLegacyHash {
                pending.migrate.insert(token.name)
                urgent = true
            }
        }
        if urgent { wake.yield() }
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in self.wakeups { await self.flushUrgent() }
            }
            group.addTask {
                while !Task.isCancelled {
                    do {
                        try await Task.sleep(for: self.lastUsedInterval)
                    } catch {
                        return
                    }
                    await self.flushLastUsed()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        // Last writes before exiting, so a drained replica does not lose its usage records — within
        // `finalFlushLimit`: an unreachable API must not hold up the shutdown.
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await self.flushUrgent()
                await self.flushLastUsed()
            }
            group.addTask { try? await Task.sleep(for: Self.finalFlushLimit) }
            await group.next()
            group.cancelAll()
        }
    }

    static let finalFlushLimit: Duration = .seconds(5)

    func flushUrgent() async {
        let (refresh, migrate) = pending.withLock { pending in
            defer {
                pending.refresh.removeAll()
                pending.migrate.removeAll()
            }
            return (pending.refresh, pending.migrate)
        }
        for (user, resourceVersion) in refresh { await requestRefresh(user: user, resourceVersion: resourceVersion) }
        for token in migrate { await migrateLegacyHash(token: token) }
    }

    func flushLastUsed() async {
        let due = pending.withLock { pending in
            defer { pending.lastUsed.removeAll() }
            return pending.lastUsed
        }
        let snapshot = store.snapshot
        let writes = Array(due)
        for (index, (name, usedAt)) in writes.enumerated() {
            if Task.isCancelled {
                keepForLater(writes[index...])
                return
            }
            // Another replica (or an earlier write) already recorded a later use.
            if let recorded = snapshot?.tokens[name]?.lastUsedAt, recorded >= usedAt { continue }
            // Encoding a struct of strings cannot fail; the patch is made outside `do` so that the
            // errors caught below are the API's.
            guard let patch = try? Self.encode(LastUsedPatch(lastUsedAt: RFC3339.format(usedAt))) else { continue }
            do {
                _ = try await client.mergePatch(.clusterAuthTokens, namespace: namespace, name: name, patch: patch)
                metrics?.write(.lastUsedAt, .ok)
            } catch {
                // A deleted token needs no usage record.
                metrics?.write(.lastUsedAt, Self.outcome(error))
                if error.kind == .transport {
                    // The API is unreachable: the other writes of this round would only wait for
                    // the same timeout. They are kept (the newest use per token) for the next round.
                    keepForLater(writes[index...])
                    logger.warning(
                        "lastUsedAt not recorded yet: API unreachable; kept for the next round",
                        metadata: ["tokens": "\(writes.count - index)", "error": "\(error)"])
                    return
                }
                if !error.isNotFound {
                    logger.warning("lastUsedAt not recorded", metadata: ["token": "\(name)", "error": "\(error)"])
                }
            }
        }
    }

    /// Puts writes that could not be made back, keeping the newest use per token (a review may
    /// have recorded a later one meanwhile).
    private func keepForLater(_ writes: ArraySlice<(key: String, value: Timestamp)>) {
        pending.withLock { pending in
            for (name, usedAt) in writes {
                pending.lastUsed[name] = max(pending.lastUsed[name] ?? usedAt, usedAt)
            }
        }
    }

    /// The merge patches and the Secret this writer sends, encoded (never assembled by hand).
    struct LastUsedPatch: Encodable {
        var lastUsedAt: String
    }

    struct Precondition: Encodable {
        var resourceVersion: String
    }

    struct RefreshPatch: Encodable {
        var metadata: Precondition
        var needsRefresh = true
    }

    struct ClearHashPatch: Encodable {
        var metadata: Precondition
        var hash = ""
    }

    struct SecretObject: Encodable {
        struct Metadata: Encodable {
            var name: String
            var namespace: String
        }

        var apiVersion = "v1"
        var kind = "Secret"
        var metadata: Metadata
        var type = "Opaque"
        var data: [String: String]
    }

    static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }

    private func requestRefresh(user: String, resourceVersion: String) async {
        do {
            let patch = try Self.encode(RefreshPatch(metadata: Precondition(resourceVersion: resourceVersion)))
            _ = try await client.mergePatch(.clusterUserAttributes, namespace: namespace, name: user, patch: patch)
            metrics?.write(.needsRefresh, .ok)
            logger.info("asked Rancher to refresh a user's groups", metadata: ["user": "\(user)"])
        } catch let error as KubeError {
            metrics?.write(.needsRefresh, Self.outcome(error))
            // A user record that changed (or went away) since the review is left alone: the next review decides again.
            if !error.isConflict, !error.isNotFound {
                logger.warning("needsRefresh not recorded", metadata: ["user": "\(user)", "error": "\(error)"])
            }
        } catch {
            logger.warning("needsRefresh not recorded", metadata: ["user": "\(user)", "error": "\(error)"])
        }
    }

    /// Moves a legacy `ClusterAuthToken.hash` into the hash Secret and clears the field.
    func migrateLegacyHash(token name: String) async {
        for _ in 0..<5 {
            do {
                let current = try JSONDecoder().decode(
                    ClusterAuthToken.self, from: try await client.get(.clusterAuthTokens, namespace: namespace, name: name))
                guard !current.legacyHash.isEmpty else { return }  // another replica finished it
                try await writeHashSecret(name: name, hash: current.legacyHash)
                let patch = try Self.encode(ClearHashPatch(metadata: Precondition(resourceVersion: current.metadata.resourceVersion ?? "")))
                _ = try await client.mergePatch(.clusterAuthTokens, namespace: namespace, name: name, patch: patch)
                logger.info("migrated legacy token hash into its Secret", metadata: ["token": "\(name)"])
                metrics?.write(.hashMigration, .ok)
                return
            } catch let error as KubeError where error.isConflict {
                metrics?.write(.hashMigration, .conflict)
                continue
            } catch let error as KubeError where error.isNotFound {
                metrics?.write(.hashMigration, .notFound)
                return
            } catch {
                metrics?.write(.hashMigration, .error)
                logger.warning(
                    "legacy hash migration failed; it is retried on the token's next use", metadata: ["token": "\(name)", "error": "\(error)"])
                return
            }
        }
        logger.warning("legacy hash migration kept conflicting; it is retried on the token's next use", metadata: ["token": "\(name)"])
    }

    static func outcome(_ error: KubeError) -> ServiceMetrics.WriteOutcome {
        error.isNotFound ? .notFound : error.isConflict ? .conflict : .error
    }

    private func writeHashSecret(name: String, hash: String) async throws {
        let data = Data(hash.utf8).base64EncodedString()
        let secret = try Self.encode(SecretObject(metadata: .init(name: name, namespace: namespace), data: ["hash": data]))
        let created: Bool
        do {
            _ = try await client.create(.secrets, namespace: namespace, body: secret)
            created = true
        } catch {
            guard error.isAlreadyExists else { throw error }
            created = false
        }
        if !created {
            // Replace the whole data of the existing Secret, keeping its resourceVersion as precondition.
            var existing =
                try JSONSerialization.jsonObject(with: try await client.get(.secrets, namespace: namespace, name: name)) as? [String: Any] ?? [:]
            existing["data"] = ["hash": data]
            existing["stringData"] = nil
            _ = try await client.update(.secrets, namespace: namespace, name: name, body: try JSONSerialization.data(withJSONObject: existing))
        }
    }
}
