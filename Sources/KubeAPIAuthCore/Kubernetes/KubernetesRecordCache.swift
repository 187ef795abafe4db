import KubeClient
import Logging
import RancherAuth
import Synchronization

/// The five kinds of records the service mirrors from the namespace (the emergency Secret is
/// watched on its own, by name).
public enum RecordKind: String, Sendable, CaseIterable {
    case clusterAuthTokens = "clusterauthtokens"
    case clusterUserAttributes = "clusteruserattributes"
    case secrets
    case configMaps = "configmaps"
    /// The emergency-access Secret (one Secret, selected by name).
    case emergencySecret = "emergency-secret"

    var resource: APIResource {
        switch self {
        case .clusterAuthTokens: return .clusterAuthTokens
        case .clusterUserAttributes: return .clusterUserAttributes
        case .secrets, .emergencySecret: return .secrets
        case .configMaps: return .configMaps
        }
    }
}

/// Where Rancher's records live in the API (the CRDs of `manifests/crds.yaml`, and core/v1).
extension APIResource {
    static let clusterAuthTokens = APIResource(group: "cluster.cattle.io", version: "v3", plural: "clusterauthtokens")
    static let clusterUserAttributes = APIResource(group: "cluster.cattle.io", version: "v3", plural: "clusteruserattributes")
    static let secrets = APIResource(group: "", version: "v1", plural: "secrets")
    static let configMaps = APIResource(group: "", version: "v1", plural: "configmaps")
}

/// How one kind's list+watch is doing, for `/readyz` and logs.
public struct ReflectorStatus: Sendable {
    public var synced = false
    /// Serving this kind from the snapshot file until its first successful list.
    public var fromSnapshot = false
    public var watching = false
    public var objects = 0
    /// When the data was last confirmed current (list, event or bookmark).
    public var confirmedAt: ContinuousClock.Instant?
    public var lastError: String?
}

/// The mutable per-kind maps fed by the reflectors. Changes are folded into a new immutable
/// ``RecordSnapshot`` by a single publisher, so a burst of events costs one rebuild, not one each.
public final class KubernetesRecordCache: Sendable {
    /// The cache consumes the reflectors' events as they are.
    public typealias Change<T: Sendable> = ReflectorEvent<T>

    private struct State {
        var tokens = RecordTable<ClusterAuthToken>()
        var users: [String: UserRecord] = [:]
        var secrets = RecordTable<HashSecret>()
        var refresh: RefreshConfigMap?
        /// The emergency Secret's settings, `nil` when it is absent or cannot be used.
        var emergency: EmergencyAccess?
        var status: [RecordKind: ReflectorStatus] = Dictionary(uniqueKeysWithValues: RecordKind.allCases.map { ($0, ReflectorStatus()) })
        var dirty = false
        /// Each kind's list in progress (`ReflectorEvent.listStarted`, `.listPart`), built aside
        /// and swapped in by the `.replaced` that completes it.
        var listing = Listing()
        /// A list was applied and its decoded objects released since the publisher last ran:
        /// the memory decoding them took is handed back (``Malloc/returnFreedMemory()``).
        var listed = false
        /// Whether "records synced" was logged (once, at the first publication from the API).
        var announcedLive = false
        var snapshotWrittenAt: Timestamp?
        /// Tokens whose legacy hash was cleared before their hash Secret arrived (see `apply`), and
        /// until when (the injected clock) the previous hash is carried.
        var carriedLegacyHashes: [String: Timestamp] = [:]
        /// Objects the API holds that cannot be decoded (absent from the records), per kind.
        var unreadable: [RecordKind: [String: String]] = [:]
    }

    struct Listing {
        var tokens: RecordTable<ClusterAuthToken>?
        var users: [String: UserRecord]?
        var secrets: RecordTable<HashSecret>?
        /// Only the objects that matter (by name) of the ConfigMaps and Secrets listed so far.
        var refresh: [RefreshConfigMap]?
        var emergency: [OpaqueSecret]?
    }

    /// How long a cleared legacy hash is kept while its Secret has not arrived.
    static let legacyHashCarryLimit: Duration = .seconds(30)

    private let state = Mutex(State())
    let store: RecordStore
    let clock: any WallClock
    let metrics: ServiceMetrics?
    let logger: Logger?
    private let wake: AsyncStream<Void>.Continuation
    private let wakeups: AsyncStream<Void>
    private let livePublished: AsyncStream<Void>.Continuation
    /// Signals each publication made from live (API) data only, for the snapshot writer.
    let livePublications: AsyncStream<Void>

    public init(store: RecordStore, clock: any WallClock, metrics: ServiceMetrics? = nil, logger: Logger? = nil) {
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.logger = logger
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (livePublications, livePublished) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Serves the snapshot file's records for every kind not listed yet (the API is unreachable).
    /// Each kind's first successful list replaces them, so changes made meanwhile take effect then.
    func seed(from snapshot: RecordSnapshot, writtenAt: Timestamp?) {
        mutate { state in
            for kind in RecordKind.allCases where state.status[kind]?.synced != true {
                switch kind {
                case .clusterAuthTokens: state.tokens = snapshot.tokens
                case .clusterUserAttributes: state.users = snapshot.users
                case .secrets: state.secrets = snapshot.hashSecrets
                case .configMaps: state.refresh = snapshot.refreshConfigMap
                case .emergencySecret: state.emergency = snapshot.emergency
                }
                state.status[kind]?.fromSnapshot = true
            }
            state.snapshotWrittenAt = writtenAt
        }
    }

    /// Tokens. The legacy-hash migration writes the Secret, then clears `hash`; the two kinds
    /// arrive on separate watches, so the cleared token can come first. Until its Secret arrives,
    /// the token keeps the hash it had (at most ``legacyHashCarryLimit``), so that a migration by
    /// another replica never refuses a valid token in between.
    func apply(_ change: Change<ClusterAuthToken>) {
        let now = clock.now()
        mutate(change) { state in
            // The previous version is looked up only when it can matter (a token without a legacy
            // hash; nearly every token, once migrated): a list applies 100,000 tokens.
            func carry(_ token: ClusterAuthToken) -> ClusterAuthToken {
                guard token.legacyHash.isEmpty, let previous = state.tokens[token.name], !previous.legacyHash.isEmpty,
                    !state.secrets.contains(token.name)
                else {
                    if !state.carriedLegacyHashes.isEmpty { state.carriedLegacyHashes.removeValue(forKey: token.name) }
                    return token
                }
                // The first carry sets the deadline; a later event for the same token does not extend it.
                if state.carriedLegacyHashes[token.name] == nil {
                    state.carriedLegacyHashes[token.name] = now.adding(nanoseconds: Self.legacyHashCarryLimit.nanoseconds)
                }
                if let deadline = state.carriedLegacyHashes[token.name], deadline <= now {
                    state.carriedLegacyHashes.removeValue(forKey: token.name)
                    return token
                }
                return token.withLegacyHash(previous.legacyHash)
            }
            switch change {
            case .listStarted:
                state.listing.tokens = RecordTable()
            case .listPart(let part):
                var listed = state.listing.tokens ?? RecordTable()
                state.listing.tokens = nil
                listed.reserveCapacity(forAdding: part.count)
                for token in part { listed[token.name] = carry(token) }
                state.listing.tokens = listed
            case .replaced(let last):
                var fresh = state.listing.tokens ?? RecordTable(minimumCapacity: last.count)
                state.listing.tokens = nil
                for token in last { fresh[token.name] = carry(token) }
                fresh.shrinkToFit()
                state.tokens = fresh
            case .upserted(let token):
                state.tokens[token.name] = carry(token)
            case .removed(let name):
                state.tokens[name] = nil
                state.carriedLegacyHashes.removeValue(forKey: name)
            }
        }
    }

    /// Drops every carried hash whose deadline has passed on the injected clock. Called on every
    /// publication and by the source's periodic check, so the limit holds without any event.
    func expireCarriedLegacyHashes() {
        let now = clock.now()
        let expired = state.withLock { state in state.carriedLegacyHashes.filter { $0.value <= now }.map(\.key) }
        dropCarriedLegacyHashes(expired)
    }

    /// The Secret arrived (or the limit passed): the tokens go back to what the API says.
    private func dropCarriedLegacyHashes(_ names: [String]) {
        guard !names.isEmpty else { return }
        mutate { state in
            for name in names {
                guard state.carriedLegacyHashes.removeValue(forKey: name) != nil, let token = state.tokens[name] else { continue }
                state.tokens[name] = token.withLegacyHash("")
            }
        }
    }

    func apply(_ change: Change<ClusterUserAttribute>) {
        mutate(change) { state in
            Self.apply(change, to: &state.users, listing: &state.listing.users, key: \.name, transform: UserRecord.init)
        }
    }

    func apply(_ change: Change<HashSecret>) {
        mutate(change) { state in Self.apply(change, to: &state.secrets, listing: &state.listing.secrets, key: \.name, transform: { $0 }) }
        let arrived = state.withLock { state in state.carriedLegacyHashes.keys.filter { state.secrets[$0] != nil } }
        dropCarriedLegacyHashes(arrived)
    }

    func apply(_ change: Change<RefreshConfigMap>) {
        mutate(change) { state in
            let named = { (configMap: RefreshConfigMap) in configMap.metadata.name == RefreshPeriod.configMapName }
            switch change {
            case .listStarted: state.listing.refresh = []
            case .listPart(let part): state.listing.refresh = (state.listing.refresh ?? []) + part.filter(named)
            case .replaced(let last):
                state.refresh = ((state.listing.refresh ?? []) + last).first(where: named)
                state.listing.refresh = nil
            case .upserted(let one) where one.metadata.name == RefreshPeriod.configMapName: state.refresh = one
            case .removed(let name) where name == RefreshPeriod.configMapName: state.refresh = nil
            default: break
            }
        }
    }

    /// The emergency Secret (only the one named `name` counts). One that cannot be used turns the
    /// emergency path off, with a log line that says why.
    func applyEmergency(_ change: Change<OpaqueSecret>, name: String) {
        var problem: String?
        mutate(change) { state in
            let secret: OpaqueSecret?
            switch change {
            case .listStarted:
                state.listing.emergency = []
                return
            case .listPart(let part):
                state.listing.emergency = (state.listing.emergency ?? []) + part.filter { $0.name == name }
                return
            case .replaced(let all):
                secret = ((state.listing.emergency ?? []) + all).first { $0.name == name }
                state.listing.emergency = nil
            case .upserted(let one) where one.name == name: secret = one
            case .removed(let removed) where removed == name: secret = nil
            default: return
            }
            guard let secret else {
                state.emergency = nil
                return
            }
            do {
                state.emergency = try EmergencyAccess(secret: secret, fallbackVersion: "")
            } catch {
                state.emergency = nil
                problem = "\(error)"
            }
        }
        if let problem {
            logger?.error("emergency Secret cannot be used; emergency access is off", metadata: ["secret": "\(name)", "problem": "\(problem)"])
        }
    }

    private static func apply<T, Map: NameKeyedRecords>(
        _ change: Change<T>, to map: inout Map, listing: inout Map?, key: KeyPath<T, String>, transform: (T) -> Map.Record
    ) {
        switch change {
        case .listStarted:
            listing = Map(minimumCapacity: 0)
        case .listPart(let part):
            var listed = listing ?? Map(minimumCapacity: part.count)
            listing = nil
            listed.reserveCapacity(forAdding: part.count)
            for item in part { listed[item[keyPath: key]] = transform(item) }
            listing = listed
        case .replaced(let last):
            // Built in place (the last of two same-named objects wins), without an array of pairs.
            var fresh = listing ?? Map(minimumCapacity: last.count)
            listing = nil
            for item in last { fresh[item[keyPath: key]] = transform(item) }
            fresh.shrinkToFit()
            map = fresh
        case .upserted(let one):
            map[one[keyPath: key]] = transform(one)
        case .removed(let name):
            map[name] = nil
        }
    }

    /// A reflector applied a list and released its objects (see `State.listed`).
    func noteListed() {
        state.withLock { $0.listed = true }
        wake.yield()
    }

    /// As `mutate(_:)`, except that a list's start and parts change nothing published: they are
    /// applied without waking the publisher.
    private func mutate<T>(_ change: Change<T>, _ body: (inout State) -> Void) {
        switch change {
        case .listStarted, .listPart: state.withLock { body(&$0) }
        case .replaced, .upserted, .removed: mutate(body)
        }
    }

    private func mutate(_ body: (inout State) -> Void) {
        state.withLock { state in
            body(&state)
            state.dirty = true
        }
        wake.yield()
    }

    /// A change of a kind's status. One that changes whether the kind is synced or served from the
    /// snapshot file republishes: a reflector hands over its list before it reports it listed, so
    /// the publisher may already have published that data while the kind still counted as "from
    /// the snapshot", and nothing else would then publish the (now live) records or announce them.
    func updateStatus(_ kind: RecordKind, _ body: (inout ReflectorStatus) -> Void) {
        state.withLock { state in
            let before = state.status[kind, default: ReflectorStatus()]
            body(&state.status[kind, default: ReflectorStatus()])
            let after = state.status[kind, default: ReflectorStatus()]
            if before.synced != after.synced || before.fromSnapshot != after.fromSnapshot { state.dirty = true }
        }
        wake.yield()
    }

    public var statuses: [RecordKind: ReflectorStatus] { state.withLock { $0.status } }

    /// Keeps the set of objects a reflector could not decode (for the census; see ``unreadableFindings()``).
    func applyUnreadable(_ change: Change<UnreadableObject>, kind: RecordKind) {
        state.withLock { state in
            switch change {
            // The reflector reports unreadable objects once per list, whole (`replaced`).
            case .listStarted, .listPart: return
            case .replaced(let all):
                state.unreadable[kind] = Dictionary(all.map { ($0.name, $0.problem) }, uniquingKeysWith: { _, last in last })
            case .upserted(let one):
                state.unreadable[kind, default: [:]][one.name] = one.problem
            case .removed(let name):
                // Nearly every event is of a readable object: no write when there is nothing to remove.
                if state.unreadable[kind]?[name] != nil { state.unreadable[kind]?[name] = nil }
            }
        }
    }

    /// The records that cannot be read, as census findings.
    package func unreadableFindings() -> [RecordFinding] {
        let unreadable = state.withLock { $0.unreadable }
        var findings: [RecordFinding] = []
        for (kind, objects) in unreadable {
            let findingKind: RecordFinding.Kind
            switch kind {
            case .clusterAuthTokens: findingKind = .clusterAuthToken
            case .clusterUserAttributes: findingKind = .clusterUserAttribute
            case .secrets, .emergencySecret: findingKind = .secret
            case .configMaps: continue
            }
            for (name, problem) in objects {
                findings.append(RecordFinding(kind: findingKind, name: name, reason: .unreadable, detail: problem))
            }
        }
        return findings
    }

    /// Publishes snapshots as changes arrive (coalescing bursts), once every kind has synced.
    func runPublisher() async {
        for await _ in wakeups {
            expireCarriedLegacyHashes()
            publishIfReady()
        }
    }

    /// Checks the carried hashes' deadlines every `interval` until cancelled (owned by the source).
    func runCarryExpiry(every interval: Duration = .seconds(1)) async {
        while (try? await Task.sleep(for: interval)) != nil {
            expireCarriedLegacyHashes()
        }
    }

    func publishIfReady() {
        let (snapshot, live, firstLive, listed): (RecordSnapshot?, Bool, Bool, Bool) = state.withLock { state in
            let listed = state.listed
            state.listed = false
            guard state.dirty, state.status.values.allSatisfy({ $0.synced || $0.fromSnapshot }) else { return (nil, false, false, listed) }
            state.dirty = false
            state.status[.clusterAuthTokens]?.objects = state.tokens.count
            state.status[.clusterUserAttributes]?.objects = state.users.count
            state.status[.secrets]?.objects = state.secrets.count
            state.status[.configMaps]?.objects = state.refresh == nil ? 0 : 1
            state.status[.emergencySecret]?.objects = state.emergency == nil ? 0 : 1
            let snapshot = RecordSnapshot(
                tokens: state.tokens, users: state.users, hashSecrets: state.secrets, refreshConfigMap: state.refresh,
                emergency: state.emergency)
            let live = state.status.values.allSatisfy { $0.synced && !$0.fromSnapshot }
            let firstLive = live && !state.announcedLive
            if live { state.announcedLive = true }
            return (snapshot, live, firstLive, listed)
        }
        // A list of 100,000 records decodes them as objects before the tables hold them: without
        // this, the freed objects stayed resident in malloc's arenas (measured: 90 MiB anonymous
        // after a sync whose records hold 41 MiB).
        defer { if listed { Malloc.returnFreedMemory() } }
        guard let snapshot else { return }
        store.publish(snapshot, problemCount: 0, at: clock.now())
        if firstLive {
            logger?.info(
                "records synced from the API; answering reviews",
                metadata: ["tokens": "\(snapshot.tokens.count)", "users": "\(snapshot.users.count)", "secrets": "\(snapshot.hashSecrets.count)"])
        }
        if live { livePublished.yield() }
    }

    /// Per-kind record counts and last confirmation times, for the scrape.
    func exportMetrics(_ metrics: ServiceMetrics) {
        let (counts, statuses) = state.withLock { state in
            (
                [
                    RecordKind.clusterAuthTokens: state.tokens.count, .clusterUserAttributes: state.users.count,
                    .secrets: state.secrets.count, .configMaps: state.refresh == nil ? 0 : 1,
                    .emergencySecret: state.emergency == nil ? 0 : 1,
                ], state.status
            )
        }
        let now = ContinuousClock.now
        let wallNow = clock.now()
        for kind in RecordKind.allCases {
            metrics.setRecords(kind, count: counts[kind] ?? 0)
            if let confirmed = statuses[kind]?.confirmedAt {
                let age = confirmed.duration(to: now)
                metrics.setLastSync(kind, unixSeconds: Double(wallNow.seconds) - Double(age.nanoseconds) / 1e9)
            }
        }
    }

    /// Per-kind lines for `/readyz`, computed when asked so that ages are current.
    public func describe() -> RecordStore.SourceDetails {
        let (statuses, writtenAt) = state.withLock { ($0.status, $0.snapshotWrittenAt) }
        var lines = Self.describe(statuses)
        let fromSnapshot = statuses.values.contains(where: \.fromSnapshot)
        if fromSnapshot {
            var line = "serving from the snapshot file"
            if let writtenAt {
                line += " written at \(RFC3339.format(writtenAt)) (age \(max(0, clock.now().seconds - writtenAt.seconds))s)"
            }
            lines.insert(line + " until the API server answers", at: 0)
        }
        return RecordStore.SourceDetails(lines: lines, servingFromSnapshotFile: fromSnapshot)
    }

    static func describe(_ statuses: [RecordKind: ReflectorStatus]) -> [String] {
        let now = ContinuousClock.now
        return RecordKind.allCases.map { kind in
            let status = statuses[kind] ?? ReflectorStatus()
            var line = "\(kind.rawValue): "
            line += status.synced ? "\(status.objects) object(s)" : status.fromSnapshot ? "from snapshot" : "not synced yet"
            line += status.watching ? ", watching" : ", not watching"
            if let confirmed = status.confirmedAt {
                let age = confirmed.duration(to: now)
                line += ", current as of \(age.components.seconds)s ago"
            }
            if let error = status.lastError, !status.watching { line += ", last error: \(error)" }
            return line
        }
    }
}

/// What `apply` needs of a kind's map: a dictionary of users, a ``RecordTable`` of tokens or Secrets.
protocol NameKeyedRecords {
    associatedtype Record
    init(minimumCapacity: Int)
    subscript(name: String) -> Record? { get set }
    /// Room for a list's next part (see ``RecordTable/reserveCapacity(forAdding:)``).
    mutating func reserveCapacity(forAdding additional: Int)
    /// Gives back room kept for growth, once a list has been applied.
    mutating func shrinkToFit()
}

extension Dictionary: NameKeyedRecords where Key == String {
    typealias Record = Value
    mutating func reserveCapacity(forAdding additional: Int) { reserveCapacity(count + additional) }
    mutating func shrinkToFit() {}
}

extension RecordTable: NameKeyedRecords {}
