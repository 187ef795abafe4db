import Foundation
import Synchronization

/// One change, as kept for watches that resume from an older resourceVersion.
struct StoredEvent: Sendable {
    var revision: Int64
    var resourceKey: String
    var namespace: String
    var name: String
    var type: String
    var object: JSONValue
}

/// A watch stream's receiving end. The closures must be safe to call from any thread; the
/// server calls them in commit order while holding its lock.
public struct WatchSink: Sendable {
    public var deliver: @Sendable (Data) -> Void
    /// Ends the stream cleanly (timeout, or after an ERROR event).
    public var finish: @Sendable () -> Void
    /// Drops the connection (fault injection).
    public var abort: @Sendable () -> Void

    public init(
        deliver: @escaping @Sendable (Data) -> Void, finish: @escaping @Sendable () -> Void, abort: @escaping @Sendable () -> Void
    ) {
        self.deliver = deliver
        self.finish = finish
        self.abort = abort
    }
}

/// The stored objects and the watch machinery, independent of HTTP.
///
/// Kubernetes semantics: one global, monotonically increasing resourceVersion; every write bumps
/// it and stamps the object; lists report the current one; watches replay history after a given
/// version, or answer `410 Expired` when it has been compacted away.
public final class APIServerState: Sendable {
    private struct Watcher {
        var resourceKey: String
        var namespace: String?
        var name: String?
        var sink: WatchSink
    }

    private struct State {
        var objects: [String: [String: JSONValue]] = [:]
        var revision: Int64 = 1
        /// Sorted object keys per resource, valid while `revision` is unchanged (pages of a big list).
        var sortedKeys: [String: (revision: Int64, keys: [String])] = [:]
        var history: [StoredEvent] = []
        var compactedRevision: Int64 = 0
        var watchers: [Int: Watcher] = [:]
        var nextWatcherID = 0
        var customTypes: [ResourceType] = []
        var requestCount = 0
    }

    private let state = Mutex(State())
    /// Events kept for resumption; older ones are compacted (watches from before them get 410).
    let historyLimit: Int

    public init(historyLimit: Int = 200_000) {
        self.historyLimit = historyLimit
    }

    static func key(_ resource: ResourceType) -> String { "\(resource.group)/\(resource.plural)" }
    static func objectKey(namespace: String, name: String) -> String { "\(namespace)/\(name)" }

    // MARK: Discovery

    public var resourceTypes: [ResourceType] { ResourceType.builtIn + state.withLock { $0.customTypes } }

    public func resolve(group: String, version: String, plural: String) -> ResourceType? {
        resourceTypes.first { $0.group == group && $0.version == version && $0.plural == plural }
    }

    public var currentRevision: Int64 { state.withLock { $0.revision } }
    public var activeWatchCount: Int { state.withLock { $0.watchers.count } }

    // MARK: Reads

    public func get(_ resource: ResourceType, namespace: String, name: String) throws(APIStatusError) -> JSONValue {
        let object = state.withLock { $0.objects[Self.key(resource)]?[Self.objectKey(namespace: namespace, name: name)] }
        guard let object else { throw .notFound(resource, name) }
        return object
    }

    /// Objects in `namespace` (all namespaces when `nil`), sorted, with the list's resourceVersion.
    public func list(_ resource: ResourceType, namespace: String?, name: String? = nil) -> (items: [JSONValue], revision: Int64) {
        let page = list(resource, namespace: namespace, name: name, limit: nil, after: nil)
        return (page.items, page.revision)
    }

    /// One page of a list in key order: at most `limit` objects after the key `after`, and the key
    /// of the last one when more follow (what a `continue` token carries).
    ///
    /// Unlike a real API server, later pages come from the current state, not from a snapshot at
    /// the first page's resourceVersion; a client that watches from that resourceVersion still
    /// converges (it sees every change made after the first page as an event).
    public func list(
        _ resource: ResourceType, namespace: String?, name: String? = nil, limit: Int?, after: String?
    ) -> (items: [JSONValue], revision: Int64, lastKey: String?, remaining: Int) {
        state.withLock { state in
            let resourceKey = Self.key(resource)
            let all = state.objects[resourceKey] ?? [:]
            let keys: [String]
            if let cached = state.sortedKeys[resourceKey], cached.revision == state.revision {
                keys = cached.keys
            } else {
                keys = all.keys.sorted()
                state.sortedKeys[resourceKey] = (state.revision, keys)
            }
            // Keys are "namespace/name", so one namespace is a contiguous run: binary-search its start.
            var index = Self.lowerBound(of: max(after ?? "", namespace.map { $0 + "/" } ?? ""), in: keys)
            if let after, index < keys.count, keys[index] == after { index += 1 }
            var items: [JSONValue] = []
            var lastKey: String?
            var remaining = 0
            while index < keys.count {
                let key = keys[index]
                index += 1
                guard let object = all[key] else { continue }
                if let namespace, !key.hasPrefix(namespace + "/") { break }
                guard Self.matches(object, namespace: namespace, name: name) else { continue }
                if let limit, limit > 0, items.count == limit {
                    // One more match exists; count the rest of the namespace's run without reading it.
                    let end = namespace.map { Self.lowerBound(of: $0 + "0", in: keys) } ?? keys.count
                    remaining = name == nil ? end - (index - 1) : 1
                    break
                }
                items.append(object)
                lastKey = key
            }
            return (items, state.revision, remaining > 0 ? lastKey : nil, remaining)
        }
    }

    /// The index of the first key not less than `floor` in sorted `keys`.
    private static func lowerBound(of floor: String, in keys: [String]) -> Int {
        var low = 0
        var high = keys.count
        while low < high {
            let middle = (low + high) / 2
            if keys[middle] < floor { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private static func matches(_ object: JSONValue, namespace: String?, name: String?) -> Bool {
        (namespace == nil || (object.metadata("namespace") ?? "") == namespace) && (name == nil || object.metadata("name") == name)
    }

    // MARK: Writes

    public func create(_ resource: ResourceType, namespace: String, object input: JSONValue) throws(APIStatusError) -> JSONValue {
        guard case .object = input else { throw .badRequest("the request body must be a JSON object") }
        var object = input
        var name = object.metadata("name") ?? ""
        if name.isEmpty, let prefix = object.metadata("generateName"), !prefix.isEmpty {
            name = prefix + String((0..<5).map { _ in Array("bcdfghjklmnpqrstvwxz2456789").randomElement()! })
        }
        guard !name.isEmpty else { throw .invalid(resource, "", "metadata.name: Required value: name or generateName is required") }
        if resource.namespaced, let bodyNamespace = object.metadata("namespace"), !bodyNamespace.isEmpty, bodyNamespace != namespace {
            throw .badRequest("the namespace of the provided object does not match the namespace sent on the request")
        }
        object.setMetadata("name", .string(name))
        object.setMetadata("namespace", resource.namespaced ? .string(namespace) : nil)
        object["apiVersion"] = .string(resource.groupVersion)
        object["kind"] = .string(resource.kind)
        object.setMetadata("uid", .string(UUID().uuidString.lowercased()))
        object.setMetadata("creationTimestamp", .string(Self.timestamp()))
        Self.normalize(&object, resource)
        return try state.withLock { (state) throws(APIStatusError) -> JSONValue in
            let key = Self.objectKey(namespace: resource.namespaced ? namespace : "", name: name)
            guard state.objects[Self.key(resource)]?[key] == nil else { throw .alreadyExists(resource, name) }
            return commit(&state, resource, key: key, type: "ADDED", object: object)
        }
    }

    /// PUT: a body carrying `metadata.resourceVersion` must match the stored one (409 otherwise).
    public func update(_ resource: ResourceType, namespace: String, name: String, object input: JSONValue) throws(APIStatusError) -> JSONValue {
        guard case .object = input else { throw .badRequest("the request body must be a JSON object") }
        if let bodyName = input.metadata("name"), bodyName != name {
            throw .badRequest("the name of the object (\(bodyName)) does not match the name on the URL (\(name))")
        }
        return try modify(resource, namespace: namespace, name: name) { (_) throws(APIStatusError) in input }
    }

    public enum PatchType: String, Sendable {
        case merge = "application/merge-patch+json"
        case json = "application/json-patch+json"
        /// Served as a merge patch: for the flat maps of Secrets, ConfigMaps and these CRDs the two agree.
        case strategicMerge = "application/strategic-merge-patch+json"
    }

    /// PATCH; a patched `metadata.resourceVersion` that differs from the stored one is a conflict,
    /// which is how clients make patches conditional.
    public func patch(
        _ resource: ResourceType, namespace: String, name: String, type: PatchType, patch: JSONValue
    ) throws(APIStatusError) -> JSONValue {
        try modify(resource, namespace: namespace, name: name) { (current) throws(APIStatusError) in
            switch type {
            case .merge, .strategicMerge:
                return current.mergePatched(with: patch)
            case .json:
                do {
                    return try current.jsonPatched(with: patch)
                } catch {
                    throw APIStatusError(code: 422, reason: "Invalid", message: "the JSON patch could not be applied: \(error)")
                }
            }
        }
    }

    private func modify(
        _ resource: ResourceType, namespace: String, name: String,
        _ change: (JSONValue) throws(APIStatusError) -> JSONValue
    ) throws(APIStatusError) -> JSONValue {
        let key = Self.objectKey(namespace: resource.namespaced ? namespace : "", name: name)
        return try state.withLock { (state) throws(APIStatusError) -> JSONValue in
            guard let current = state.objects[Self.key(resource)]?[key] else { throw .notFound(resource, name) }
            var updated = try change(current)
            guard case .object = updated else { throw .badRequest("the result must be a JSON object") }
            if let precondition = updated.metadata("resourceVersion"), precondition != current.metadata("resourceVersion") {
                throw .conflict(resource, name)
            }
            // Identity fields cannot change.
            for field in ["name", "namespace", "uid", "creationTimestamp"] {
                updated.setMetadata(field, current["metadata"]?[field])
            }
            updated["apiVersion"] = .string(resource.groupVersion)
            updated["kind"] = .string(resource.kind)
            Self.normalize(&updated, resource)
            return commit(&state, resource, key: key, type: "MODIFIED", object: updated)
        }
    }

    public func delete(_ resource: ResourceType, namespace: String, name: String) throws(APIStatusError) -> JSONValue {
        let key = Self.objectKey(namespace: resource.namespaced ? namespace : "", name: name)
        return try state.withLock { (state) throws(APIStatusError) -> JSONValue in
            guard var object = state.objects[Self.key(resource)]?[key] else { throw .notFound(resource, name) }
            state.objects[Self.key(resource)]?[key] = nil
            state.revision += 1
            object.setMetadata("resourceVersion", .string(String(state.revision)))
            record(&state, resource, key: key, type: "DELETED", object: object)
            return object
        }
    }

    /// Stamps a new resourceVersion, stores the object, records and broadcasts the event.
    private func commit(_ state: inout State, _ resource: ResourceType, key: String, type: String, object input: JSONValue) -> JSONValue {
        var object = input
        state.revision += 1
        object.setMetadata("resourceVersion", .string(String(state.revision)))
        state.objects[Self.key(resource), default: [:]][key] = object
        record(&state, resource, key: key, type: type, object: object)
        return object
    }

    private func record(_ state: inout State, _ resource: ResourceType, key: String, type: String, object: JSONValue) {
        let event = StoredEvent(
            revision: state.revision, resourceKey: Self.key(resource), namespace: object.metadata("namespace") ?? "",
            name: object.metadata("name") ?? "", type: type, object: object)
        state.history.append(event)
        if state.history.count > historyLimit {
            let dropped = state.history.count - historyLimit
            state.compactedRevision = state.history[dropped - 1].revision
            state.history.removeFirst(dropped)
        }
        if resource == .customResourceDefinitions {
            let crds = state.objects[Self.key(.customResourceDefinitions)] ?? [:]
            state.customTypes = crds.values.flatMap(ResourceType.defined(by:))
        }
        let line = Self.eventLine(type: type, object: object)
        for watcher in state.watchers.values
        where watcher.resourceKey == event.resourceKey && Self.matches(object, namespace: watcher.namespace, name: watcher.name) {
            watcher.sink.deliver(line)
        }
    }

    // MARK: Watches

    /// Starts a watch. From `resourceVersion` nil/0, the current objects arrive first as ADDED;
    /// from a later one, the recorded events after it are replayed. A compacted version is
    /// answered with one ERROR event carrying a 410 `Status`, as kube-apiserver does.
    /// Returns the watcher ID (nil when the watch ended immediately).
    public func watch(
        _ resource: ResourceType, namespace: String?, name: String?, resourceVersion: Int64?, sink: WatchSink
    ) -> Int? {
        state.withLock { state in
            let resourceKey = Self.key(resource)
            if let from = resourceVersion, from > 0 {
                guard from >= state.compactedRevision else {
                    let status = APIStatusError.expired(requested: from, current: state.revision)
                    sink.deliver(Self.eventLine(type: "ERROR", object: status.body))
                    sink.finish()
                    return nil
                }
                for event in state.history
                where event.revision > from && event.resourceKey == resourceKey
                    && Self.matches(event.object, namespace: namespace, name: name)
                {
                    sink.deliver(Self.eventLine(type: event.type, object: event.object))
                }
            } else {
                for (_, object) in (state.objects[resourceKey] ?? [:]).sorted(by: { $0.key < $1.key })
                where Self.matches(object, namespace: namespace, name: name) {
                    sink.deliver(Self.eventLine(type: "ADDED", object: object))
                }
            }
            let id = state.nextWatcherID
            state.nextWatcherID += 1
            state.watchers[id] = Watcher(resourceKey: resourceKey, namespace: namespace, name: name, sink: sink)
            return id
        }
    }

    /// Sends a BOOKMARK with the current resourceVersion (every earlier event is already queued).
    public func bookmark(watcher id: Int, resource: ResourceType) {
        state.withLock { state in
            guard let watcher = state.watchers[id] else { return }
            let object: JSONValue = .object([
                "kind": .string(resource.kind), "apiVersion": .string(resource.groupVersion),
                "metadata": .object(["resourceVersion": .string(String(state.revision))]),
            ])
            watcher.sink.deliver(Self.eventLine(type: "BOOKMARK", object: object))
        }
    }

    public func endWatch(_ id: Int) {
        _ = state.withLock { $0.watchers.removeValue(forKey: id) }
    }

    /// Ends every watch stream now (fault injection: a dropped connection to etcd or a restart).
    public func dropAllWatches() {
        let sinks = state.withLock { state in
            defer { state.watchers.removeAll() }
            return state.watchers.values.map(\.sink)
        }
        for sink in sinks { sink.abort() }
    }

    /// Forgets all history: watches resuming from any earlier resourceVersion get 410.
    public func compact() {
        state.withLock { state in
            state.compactedRevision = state.revision
            state.history.removeAll()
        }
    }

    // MARK: Helpers

    static func eventLine(type: String, object: JSONValue) -> Data {
        var data = JSONValue.object(["type": .string(type), "object": object]).serialized()
        data.append(0x0A)
        return data
    }

    /// API-server defaulting: Secrets fold `stringData` into base64 `data` and default their type.
    static func normalize(_ object: inout JSONValue, _ resource: ResourceType) {
        guard resource == .secrets else { return }
        if case .object(let stringData)? = object["stringData"] {
            var data = object["data"]?.objectValue ?? [:]
            for (key, value) in stringData {
                if let text = value.stringValue { data[key] = .string(Data(text.utf8).base64EncodedString()) }
            }
            object["data"] = .object(data)
            object["stringData"] = nil
        }
        if object["type"] == nil { object["type"] = .string("Opaque") }
    }

    static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }
}
