import KubeClient
import Logging
import RancherAuth

/// List, then watch from the list's resourceVersion; resume from the last seen resourceVersion
/// when a stream ends or breaks; relist on 410; back off with jitter while the API is unreachable.
/// One malformed object is reported and treated as absent (fail closed), never fatal.
struct Reflector<Record: Decodable & Sendable> {
    let kind: RecordKind
    let namespace: String
    let client: KubeClient
    let cache: KubernetesRecordCache
    let apply: @Sendable (KubernetesRecordCache.Change<Record>) -> Void
    let logger: Logger
    /// Called when a list fails (the API is unreachable or erroring).
    var onListFailure: @Sendable () -> Void = {}
    var initialBackoff: Duration = .milliseconds(200)
    var maxBackoff: Duration = .seconds(10)

    func run() async {
        var resourceVersion: String?
        var backoff = initialBackoff
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    do {
                        resourceVersion = try await list()
                    } catch {
                        onListFailure()
                        throw error
                    }
                }
                let events = try await client.watch(
                    kind.resource, namespace: namespace, resourceVersion: resourceVersion ?? "",
                    timeoutSeconds: Int.random(in: 300...600), as: Record.self)
                // Only once the API has answered 200: /readyz?verbose must not say "watching" while
                // a reconnect to an unreachable API is still in flight.
                cache.updateStatus(kind) { $0.watching = true }
                for try await event in events {
                    backoff = initialBackoff
                    if let next = try handle(event) { resourceVersion = next }
                }
                // The server ended the stream (timeout or restart): resume where we were.
                cache.updateStatus(kind) { $0.watching = false }
                cache.metrics?.watchRestarted(kind)
            } catch let error as KubeError where error.isGone {
                logger.info("watch resourceVersion expired; relisting", metadata: ["kind": "\(kind.rawValue)"])
                resourceVersion = nil
                cache.metrics?.relisted(kind)
                cache.updateStatus(kind) { $0.watching = false }
            } catch is CancellationError {
                return
            } catch {
                cache.updateStatus(kind) {
                    $0.watching = false
                    $0.lastError = "\(error)"
                }
                cache.metrics?.watchRestarted(kind)
                logger.warning(
                    "list/watch failed; serving the last records and retrying",
                    metadata: ["kind": "\(kind.rawValue)", "error": "\(error)", "retryIn": "\(backoff)"])
                // Full jitter keeps replicas on many nodes from retrying in step.
                let delay = Duration.nanoseconds(Int64.random(in: 0...max(1, backoff.nanoseconds)))
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    return
                }
                backoff = min(backoff * 2, maxBackoff)
            }
        }
    }

    private func list() async throws(KubeError) -> String {
        var records: [Record] = []
        let resourceVersion = try await client.list(kind.resource, namespace: namespace, as: Record.self) { item in
            switch item.result {
            case .success(let record): records.append(record)
            case .failure(let error): reportMalformed(item.name, error)
            }
        }
        apply(.replaceAll(records))
        cache.updateStatus(kind) {
            $0.synced = true
            $0.fromSnapshot = false
            $0.confirmedAt = .now
            $0.lastError = nil
        }
        logger.info("listed", metadata: ["kind": "\(kind.rawValue)", "objects": "\(records.count)", "resourceVersion": "\(resourceVersion)"])
        return resourceVersion
    }

    /// Applies one event; returns the resourceVersion to resume from.
    private func handle(_ event: WatchEvent<Record>) throws(KubeError) -> String? {
        let next: String?
        switch event {
        case .added(let object), .modified(let object):
            switch object.result {
            case .success(let record): apply(.upsert(record))
            case .failure(let error):
                // A record that became unreadable must not keep its previous, readable version alive.
                reportMalformed(object.name, error)
                apply(.remove(name: object.name))
            }
            next = object.resourceVersion
        case .deleted(let object):
            apply(.remove(name: object.name))
            next = object.resourceVersion
        case .bookmark(let resourceVersion):
            next = resourceVersion.isEmpty ? nil : resourceVersion
        case .error(let error):
            throw error
        }
        cache.updateStatus(kind) {
            $0.confirmedAt = .now
            $0.lastError = nil
        }
        return next
    }

    private func reportMalformed(_ name: String, _ error: KubeError) {
        logger.error(
            "object ignored: it cannot be read (treated as absent)",
            metadata: ["kind": "\(kind.rawValue)", "name": "\(name)", "problem": "\(error.message)"])
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
