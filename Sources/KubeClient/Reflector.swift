import Logging

/// What a ``Reflector`` hands its consumer: the whole collection after a list, then changes.
///
/// A list is handed over as it is decoded, so that no consumer holds a whole list of objects at
/// once (100,000 Secrets are ~34 MB as objects): `listStarted`, then `listPart`s, then the
/// `replaced` that completes it. A list that fails midway is simply followed by the next
/// `listStarted`; what its parts delivered must not be used.
public enum ReflectorEvent<Object: Sendable>: Sendable {
    /// A list begins: forget the parts of any earlier list that did not complete.
    case listStarted
    /// Some objects of the list in progress (the collection does not change yet).
    case listPart([Object])
    /// A complete list: the collection is exactly the objects of this list's parts and these;
    /// everything else is gone. (Without a `listStarted` before it, these objects alone.)
    case replaced([Object])
    case upserted(Object)
    case removed(name: String)
}

/// How a ``Reflector`` is doing, for readiness and metrics. Every callback is optional.
public struct ReflectorObserver: Sendable {
    /// A list succeeded (the consumer has the whole collection).
    public var listed: @Sendable (_ objects: Int, _ resourceVersion: String) -> Void = { _, _ in }
    /// A list failed: the API is unreachable or erroring.
    public var listFailed: @Sendable () -> Void = {}
    /// The API answered a watch (`true`), or the watch ended or broke (`false`).
    public var watching: @Sendable (Bool) -> Void = { _ in }
    /// The data was confirmed current: an event or a bookmark arrived.
    public var confirmed: @Sendable () -> Void = {}
    /// A list or watch failed; the reflector retries after a backoff.
    public var failed: @Sendable (_ error: String) -> Void = { _ in }
    /// The watch ended (by the server's timeout, a restart or a failure) and is re-established.
    public var watchRestarted: @Sendable () -> Void = {}
    /// The resourceVersion to resume from is gone (410): the reflector lists again.
    public var relisting: @Sendable () -> Void = {}
    /// The objects that cannot be decoded, as the API holds them now: all of them after each list,
    /// then one at a time (`upserted` when one becomes unreadable, `removed` when an object of that
    /// name is readable again or deleted). For a census of broken records; they are never handed
    /// to the consumer.
    public var unreadable: @Sendable (ReflectorEvent<UnreadableObject>) -> Void = { _ in }

    public init() {}
}

/// An object of the collection that cannot be decoded, and why (the decoder's words, which name
/// fields, never their values).
public struct UnreadableObject: Sendable, Hashable {
    public var name: String
    public var problem: String

    public init(name: String, problem: String) {
        self.name = name
        self.problem = problem
    }
}

/// Mirrors one resource collection of a namespace, the way client-go's reflector does: list
/// (in pages), then watch from the list's resourceVersion with bookmarks; resume from the last
/// seen resourceVersion when a stream ends or breaks; list again on `410 Gone`; back off with full
/// jitter while the API is unreachable. An object that cannot be decoded is reported and treated
/// as absent (a modified object that became unreadable removes its previous version: fail closed),
/// never fatal. Runs until its task is cancelled.
public struct Reflector<Object: Decodable & Sendable>: Sendable {
    public let resource: APIResource
    public let namespace: String
    let client: KubeClient
    let handle: @Sendable (ReflectorEvent<Object>) -> Void
    let logger: Logger
    public var observer = ReflectorObserver()
    /// Only the objects this selects (`metadata.name=…`), when set.
    public var fieldSelector: String?
    public var initialBackoff: Duration = .milliseconds(200)
    public var maxBackoff: Duration = .seconds(10)

    public init(
        resource: APIResource, namespace: String, client: KubeClient, logger: Logger,
        handle: @escaping @Sendable (ReflectorEvent<Object>) -> Void
    ) {
        self.resource = resource
        self.namespace = namespace
        self.client = client
        self.logger = logger
        self.handle = handle
    }

    public func run() async {
        var resourceVersion: String?
        var backoff = initialBackoff
        while !Task.isCancelled {
            do {
                if resourceVersion == nil {
                    do {
                        resourceVersion = try await list()
                    } catch {
                        observer.listFailed()
                        throw error
                    }
                }
                let events = try await client.watch(
                    resource, namespace: namespace, resourceVersion: resourceVersion ?? "",
                    timeoutSeconds: Int.random(in: 300...600), as: Object.self, fieldSelector: fieldSelector)
                // Only once the API has answered: a reconnect to an unreachable API in flight is
                // not "watching".
                observer.watching(true)
                for try await event in events {
                    backoff = initialBackoff
                    if let next = try apply(event) { resourceVersion = next }
                }
                // The server ended the stream (timeout or restart): resume where we were.
                observer.watching(false)
                observer.watchRestarted()
            } catch let error as KubeError where error.isGone {
                logger.info("watch resourceVersion expired; relisting", metadata: ["kind": "\(resource.plural)"])
                resourceVersion = nil
                observer.relisting()
                observer.watching(false)
            } catch is CancellationError {
                return
            } catch {
                // Shutting down: the client's error wraps the cancellation; nothing failed.
                if Task.isCancelled { return }
                observer.watching(false)
                observer.failed("\(error)")
                observer.watchRestarted()
                logger.warning(
                    "list/watch failed; serving the last records and retrying",
                    metadata: ["kind": "\(resource.plural)", "error": "\(error)", "retryIn": "\(backoff)"])
                // Full jitter keeps replicas on many nodes from retrying in step.
                do {
                    try await Task.sleep(for: backoff * Double.random(in: 0...1))
                } catch {
                    return
                }
                backoff = min(backoff * 2, maxBackoff)
            }
        }
    }

    /// Objects handed over per `listPart` (a page's worth).
    static var listPartSize: Int { 500 }

    private func list() async throws(KubeError) -> String {
        var objects: [Object] = []
        var count = 0
        var unreadable: [UnreadableObject] = []
        handle(.listStarted)
        let resourceVersion = try await client.list(resource, namespace: namespace, as: Object.self, fieldSelector: fieldSelector) { item in
            switch item.result {
            case .success(let object):
                objects.append(object)
                count += 1
                if objects.count == Self.listPartSize {
                    handle(.listPart(objects))
                    objects.removeAll(keepingCapacity: true)
                }
            case .failure(let error):
                reportMalformed(item.name, error)
                unreadable.append(UnreadableObject(name: item.name, problem: error.message))
            }
        }
        observer.unreadable(.replaced(unreadable))
        handle(.replaced(objects))
        // Released before `listed` is reported: the consumer keeps what it needs of the objects,
        // and may then hand the memory that decoding them took back to the system.
        objects = []
        observer.listed(count, resourceVersion)
        var metadata: Logger.Metadata = ["kind": "\(resource.plural)", "objects": "\(count)", "resourceVersion": "\(resourceVersion)"]
        if let fieldSelector { metadata["selector"] = "\(fieldSelector)" }
        logger.info("listed", metadata: metadata)
        return resourceVersion
    }

    /// Applies one event; returns the resourceVersion to resume from.
    private func apply(_ event: WatchEvent<Object>) throws(KubeError) -> String? {
        let next: String?
        switch event {
        case .added(let object), .modified(let object):
            switch object.result {
            case .success(let decoded):
                observer.unreadable(.removed(name: object.name))
                handle(.upserted(decoded))
            case .failure(let error):
                // A record that became unreadable must not keep its previous, readable version alive.
                reportMalformed(object.name, error)
                observer.unreadable(.upserted(UnreadableObject(name: object.name, problem: error.message)))
                handle(.removed(name: object.name))
            }
            next = object.resourceVersion
        case .deleted(let object):
            observer.unreadable(.removed(name: object.name))
            handle(.removed(name: object.name))
            next = object.resourceVersion
        case .bookmark(let resourceVersion):
            next = resourceVersion.isEmpty ? nil : resourceVersion
        case .error(let error):
            throw error
        }
        observer.confirmed()
        return next
    }

    private func reportMalformed(_ name: String, _ error: KubeError) {
        logger.error(
            "object ignored: it cannot be read (treated as absent)",
            metadata: ["kind": "\(resource.plural)", "name": "\(name)", "problem": "\(error.message)"])
    }
}
