import Synchronization

/// Refuses, without hashing, a token that has seen `maxFailures` wrong secrets within `window`:
/// online guessing stays useless and a flood of wrong secrets for a scrypt token costs nothing.
/// Tokens already verified (in the ``VerifiedTokenCache``) are not affected, so the owner keeps working.
///
/// The bookkeeping is split into shards by access key, each with its own lock, so reviews of
/// different tokens on different event loops do not wait for one another.
public final class FailureThrottle: Sendable {
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

    private func shard(_ accessKey: String) -> Shard {
        shards[Int(UInt(bitPattern: accessKey.hashValue) % UInt(Self.shardCount))]
    }

    public func isThrottled(_ accessKey: String, now: ContinuousClock.Instant = .now) -> Bool {
        guard maxFailures > 0 else { return false }
        return shard(accessKey).failures.withLock { failures in
            guard let entry = failures[accessKey] else { return false }
            if entry.since.duration(to: now) >= window {
                failures.removeValue(forKey: accessKey)
                return false
            }
            return entry.count >= maxFailures
        }
    }

    public func recordFailure(_ accessKey: String, now: ContinuousClock.Instant = .now) {
        guard maxFailures > 0 else { return }
        let capacity = capacityPerShard
        shard(accessKey).failures.withLock { failures in
            if var entry = failures[accessKey], entry.since.duration(to: now) < window {
                entry.count += 1
                failures[accessKey] = entry
                return
            }
            if failures.count >= capacity, let victim = failures.keys.randomElement() { failures.removeValue(forKey: victim) }
            failures[accessKey] = (1, now)
        }
    }

    public func recordSuccess(_ accessKey: String) {
        guard maxFailures > 0 else { return }
        _ = shard(accessKey).failures.withLock { $0.removeValue(forKey: accessKey) }
    }

    /// Access keys currently refused.
    public var throttledCount: Int {
        let now = ContinuousClock.now
        return shards.reduce(0) { total, shard in
            total + shard.failures.withLock { $0.values.filter { $0.count >= maxFailures && $0.since.duration(to: now) < window }.count }
        }
    }
}
