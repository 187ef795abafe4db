import Logging
import NIOCore
import RancherAuth
import Synchronization
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// Every exchange the proxy forwarded under a Rancher or emergency identity, while it is open: a
/// request in flight, a response still streaming (a watch, `logs -f`), an upgraded connection
/// (`exec`, `attach`, `port-forward`), each HTTP/2 stream. Each is re-decided
/// (``SessionIdentity/recheck(against:now:)``: lookups, no hashing) against every snapshot the
/// ``RecordStore`` publishes, and at its token's deadline (`expiresAt`, as the records currently
/// say; `exp`) on the injected clock; one the records no longer let through is ended on its event
/// loop, counted by reason and written as one audit line. An exchange whose identity a change did
/// not touch keeps going.
///
/// The re-check runs on the publishing thread, never on an event loop; ending an exchange is a
/// task on that exchange's loop, so one slow client cannot delay the others.
public final class OpenExchanges: Sendable {
    /// What a registered exchange does when it must end (called on its event loop).
    public typealias End = @Sendable (Registration, SessionEnd) -> Void

    public struct Registration: Sendable, Hashable {
        let id: UInt64
    }

    struct Entry: Sendable {
        let registration: Registration
        let identity: SessionIdentity
        let eventLoop: any EventLoop
        let opened: ContinuousClock.Instant
        let end: End
        /// The deadline a re-check is scheduled at, and its task.
        var scheduledFor: Timestamp?
        var timer: Scheduled<Void>?
    }

    private let store: RecordStore
    private let clock: any WallClock
    private let metrics: ServiceMetrics
    private let logger: Logger
    private let auditEnabled: Bool
    private let nextID = Atomic<UInt64>(0)
    /// Split by registration id so that registrations on different event loops rarely meet.
    private final class Shard: Sendable {
        let entries = Mutex<[UInt64: Entry]>([:])
    }

    private let shards: [Shard] = (0..<16).map { _ in Shard() }

    public init(store: RecordStore, clock: any WallClock, metrics: ServiceMetrics, logger: Logger, auditEnabled: Bool) {
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.logger = logger
        self.auditEnabled = auditEnabled
        store.onPublish { [weak self] snapshot in self?.recheckAll(snapshot) }
    }

    private func shard(_ id: UInt64) -> Shard { shards[Int(id % UInt64(shards.count))] }

    /// Adds an exchange forwarded as `identity` on `eventLoop`; `end` closes it.
    ///
    /// A publication may have come since its review: unless the records are still those of
    /// `reviewedAt` (the store's ``RecordStore/generation`` read before the review), it is
    /// re-decided at once against the current ones. When they are, that re-decision could only
    /// repeat the review (about a microsecond a request, on every forwarded request): only its
    /// deadline is set. A publication after the entry is in is the publication's own re-check.
    public func register(
        _ identity: SessionIdentity, reviewedAt generation: Int? = nil, on eventLoop: any EventLoop, end: @escaping End
    ) -> Registration {
        let registration = Registration(id: nextID.add(1, ordering: .relaxed).newValue)
        let entry = Entry(registration: registration, identity: identity, eventLoop: eventLoop, opened: .now, end: end)
        shard(registration.id).entries.withLock { $0[registration.id] = entry }
        let current = store.current
        if let generation, generation == current.generation {
            if let deadline = identity.deadline {
                shard(registration.id).entries.withLock { entries in
                    Self.keep(&entries, registration.id, until: deadline, schedule: schedule)
                }
            }
        } else if let snapshot = current.snapshot {
            recheck(registration.id, against: snapshot)
        }
        return registration
    }

    /// Removes an exchange that ended by itself.
    public func unregister(_ registration: Registration) {
        let entry = shard(registration.id).entries.withLock { $0.removeValue(forKey: registration.id) }
        entry?.timer?.cancel()
    }

    /// How many exchanges are open under an identity of ours.
    public var count: Int { shards.reduce(0) { $0 + $1.entries.withLock { $0.count } } }

    /// Re-decides every open exchange against `snapshot`, ending those it no longer lets through;
    /// returns how many it ended.
    @discardableResult
    public func recheckAll(_ snapshot: RecordSnapshot) -> Int {
        let now = clock.now()
        var ended = 0
        for shard in shards {
            let finished = shard.entries.withLock { entries in Self.recheck(&entries, ids: nil, snapshot: snapshot, now: now, schedule: schedule) }
            for (entry, reason) in finished { finish(entry, reason) }
            ended += finished.count
        }
        return ended
    }

    private func recheck(_ id: UInt64, against snapshot: RecordSnapshot) {
        let now = clock.now()
        let finished = shard(id).entries.withLock { entries in Self.recheck(&entries, ids: [id], snapshot: snapshot, now: now, schedule: schedule) }
        for (entry, reason) in finished { finish(entry, reason) }
    }

    /// Re-decides `ids` (all when `nil`) among `entries`: removes and returns those to end, and
    /// moves the timer of those whose deadline the records moved.
    private static func recheck(
        _ entries: inout [UInt64: Entry], ids: [UInt64]?, snapshot: RecordSnapshot, now: Timestamp,
        schedule: (Entry, Timestamp) -> Scheduled<Void>
    ) -> [(Entry, SessionEnd)] {
        var finished: [(Entry, SessionEnd)] = []
        for id in ids ?? Array(entries.keys) {
            guard let entry = entries[id] else { continue }
            switch entry.identity.recheck(against: snapshot, now: now) {
            case .end(let reason):
                entries[id] = nil
                finished.append((entry, reason))
            case .keep(let until):
                keep(&entries, id, until: until, schedule: schedule)
            }
        }
        return finished
    }

    /// Keeps exchange `id` open until `until` (if it has a deadline): its timer is set for that
    /// instant unless it is set already.
    private static func keep(
        _ entries: inout [UInt64: Entry], _ id: UInt64, until: Timestamp?, schedule: (Entry, Timestamp) -> Scheduled<Void>
    ) {
        guard var entry = entries[id], until != entry.scheduledFor || (until != nil && entry.timer == nil) else { return }
        entry.timer?.cancel()
        entry.scheduledFor = until
        entry.timer = until.map { schedule(entry, $0) }
        entries[id] = entry
    }

    /// A re-check of one exchange just after `deadline` (a token is still valid at its exact
    /// expiry instant), on its event loop's timer, the delay taken from the injected clock.
    private func schedule(_ entry: Entry, at deadline: Timestamp) -> Scheduled<Void> {
        let delay = max(0, clock.now().nanoseconds(until: deadline)) + 1_000_000
        let id = entry.registration.id
        return entry.eventLoop.scheduleTask(in: .nanoseconds(delay)) { [weak self] in
            guard let self, let snapshot = self.store.snapshot else { return }
            // Spent: if the wall clock still says valid (it lags the loop's timer), the re-check
            // then sets a new one for the same deadline instead of leaving none.
            self.shard(id).entries.withLock { $0[id]?.timer = nil }
            self.recheck(id, against: snapshot)
        }
    }

    private func finish(_ entry: Entry, _ reason: SessionEnd) {
        entry.timer?.cancel()
        metrics.proxySessionEnded(reason)
        if auditEnabled {
            logger.info(
                "session ended",
                metadata: [
                    "user": "\(entry.identity.user)", "reason": "\(reason.rawValue)",
                    "open_ms": "\(entry.opened.duration(to: .now).logMilliseconds)",
                ])
        }
        let end = entry.end
        let registration = entry.registration
        entry.eventLoop.execute { end(registration, reason) }
    }
}
