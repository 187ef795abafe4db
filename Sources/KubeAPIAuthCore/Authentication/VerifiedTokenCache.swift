import Crypto
import RancherAuth
import Synchronization

/// Remembers bearer tokens whose secret was verified, so that repeated reviews of the same token
/// skip the hash (scrypt costs ~100 ms). Revocation-safe by construction: an entry is reused only
/// while the token's, the user's and the hash Secret's resourceVersions are the ones it was
/// verified against, and every other rule (enabled, expiry, user) is re-checked on each review.
///
/// Keys are SHA-256 digests of the whole bearer token: the cache never holds a secret. Bounded
/// per shard; a full shard evicts an arbitrary entry.
public final class VerifiedTokenCache: Sendable {
    public typealias Key = SHA256.Digest

    private final class Shard: Sendable {
        let entries = Mutex<[Key: RecordVersions]>([:])
    }

    private let shards: [Shard]
    private let capacityPerShard: Int
    private let counters = Counters()

    final class Counters: Sendable {
        let hits = Atomic<Int>(0)
        let misses = Atomic<Int>(0)
        let evictions = Atomic<Int>(0)
    }

    public init(capacity: Int) {
        let shardCount = 16
        shards = (0..<shardCount).map { _ in Shard() }
        capacityPerShard = max(1, capacity / shardCount)
    }

    public static func key(for token: String) -> Key {
        SHA256.hash(data: Array(token.utf8))
    }

    private func shard(_ key: Key) -> Shard {
        key.withUnsafeBytes { shards[Int($0[0]) % shards.count] }
    }

    public func contains(_ key: Key, versions: RecordVersions) -> Bool {
        guard versions.isComplete else { return false }
        let hit = shard(key).entries.withLock { $0[key] == versions }
        if hit {
            counters.hits.add(1, ordering: .relaxed)
        } else {
            counters.misses.add(1, ordering: .relaxed)
        }
        return hit
    }

    /// Remembers a verification; returns true when another entry had to be evicted for it.
    @discardableResult
    public func insert(_ key: Key, versions: RecordVersions) -> Bool {
        guard versions.isComplete else { return false }
        let evicted = shard(key).entries.withLock { entries -> Bool in
            var evicted = false
            if entries[key] == nil, entries.count >= capacityPerShard, let victim = entries.keys.randomElement() {
                entries.removeValue(forKey: victim)
                evicted = true
            }
            entries[key] = versions
            return evicted
        }
        if evicted { counters.evictions.add(1, ordering: .relaxed) }
        return evicted
    }

    public func remove(_ key: Key) {
        _ = shard(key).entries.withLock { $0.removeValue(forKey: key) }
    }

    public var count: Int { shards.reduce(0) { $0 + $1.entries.withLock { $0.count } } }
    public var hits: Int { counters.hits.load(ordering: .relaxed) }
    public var misses: Int { counters.misses.load(ordering: .relaxed) }
    public var evictions: Int { counters.evictions.load(ordering: .relaxed) }
}
