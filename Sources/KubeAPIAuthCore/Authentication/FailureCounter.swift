import Synchronization

/// Counts wrong secrets per token name, to tell when someone is guessing: a name with `maxFailures`
/// wrong secrets within `window` is *suspect*, which the audit line (`guessing=true`) and the
/// `guessed_tokens` gauge report.
///
/// It never refuses anything. A token's name is public (it is in kubeconfigs and logs), so a
/// refusal keyed by the name alone would let anyone who knows it lock the owner out: a burst of
/// wrong secrets each window and the owner's correct secret fails too. Guessing stays useless
/// without it (a Rancher secret is 54 random characters); what hashing costs is bounded by the
/// expensive-hash pool (``ExpensiveHashWorkers``: its queue, and a share per client where the door
/// knows the client), never by the name.
///
/// The bookkeeping is split into shards by name, each with its own lock, so reviews of different
/// tokens on different event loops do not wait for one another.
public final class FailureCounter: Sendable {
    public let maxFailures: Int
    public let window: Duration
    private final class Shard: Sendable {
        let failures = Mutex<[String: (count: Int, since: ContinuousClock.Instant)]>([:])
    }

    private let shards: [Shard]
    private let capacityPerShard: Int
    private static let shardCount = 16

    public init(maxFailures: Int, window: Duration, capacity: Int = 100_000) {
        self.maxFailures = maxFailures
        self.window = window
        self.capacityPerShard = max(1, capacity / Self.shardCount)
        self.shards = (0..<Self.shardCount).map { _ in Shard() }
    }

    private func shard(_ name: String) -> Shard {
        shards[Int(UInt(bitPattern: name.hashValue) % UInt(Self.shardCount))]
    }

    /// Counts a wrong secret for `name`; whether the name is now suspect.
    @discardableResult
    public func recordFailure(_ name: String, now: ContinuousClock.Instant = .now) -> Bool {
        guard maxFailures > 0 else { return false }
        let capacity = capacityPerShard
        let count = shard(name).failures.withLock { failures -> Int in
            if var entry = failures[name], entry.since.duration(to: now) < window {
                entry.count += 1
                failures[name] = entry
                return entry.count
            }
            if failures[name] == nil, failures.count >= capacity, let victim = failures.keys.randomElement() {
                failures.removeValue(forKey: victim)
            }
            failures[name] = (1, now)
            return 1
        }
        return count >= maxFailures
    }

    /// The owner's correct secret: the name is no longer suspect.
    public func recordSuccess(_ name: String) {
        guard maxFailures > 0 else { return }
        _ = shard(name).failures.withLock { $0.removeValue(forKey: name) }
    }

    /// Whether `name` has had `maxFailures` wrong secrets within the window.
    public func isSuspect(_ name: String, now: ContinuousClock.Instant = .now) -> Bool {
        guard maxFailures > 0 else { return false }
        return shard(name).failures.withLock { failures in
            guard let entry = failures[name], entry.since.duration(to: now) < window else { return false }
            return entry.count >= maxFailures
        }
    }

    /// Names currently suspect.
    public var suspectCount: Int {
        let now = ContinuousClock.now
        return shards.reduce(0) { total, shard in
            total + shard.failures.withLock { $0.values.filter { $0.count >= maxFailures && $0.since.duration(to: now) < window }.count }
        }
    }
}
