@testable import KubeAPIAuth
@testable import KubeAPIAuthCore
@testable import KubeAPIAuthHTTP
@testable import KubeAPIAuthWebhook
@testable import KubeAPIAuthProxy
import KubeClient
import RancherAuth
import Testing

@Suite("Kubernetes record cache")
struct KubernetesRecordCacheTests {
    let hash = v1Hash

    func token(legacyHash: String, version: String) -> ClusterAuthToken {
        ClusterAuthToken(
            metadata: ObjectMeta(name: "kubeconfig-u-abc12x7k2q", resourceVersion: version), userName: "u-abc12", enabled: true,
            legacyHash: legacyHash)
    }

    func review(_ cache: KubernetesRecordCache) -> Decision {
        cache.publishIfReady()
        return Authenticator().review(token: validToken, snapshot: cache.store.snapshot!, now: Timestamp(seconds: 0))
    }

    @Test("A migration seen token-first (hash cleared before its Secret arrives) never refuses the token")
    func migrationOrdering() {
        let cache = KubernetesRecordCache(store: RecordStore(source: "test"), clock: FixedClock(instant: Timestamp(seconds: 0)))
        for kind in RecordKind.allCases { cache.updateStatus(kind) { $0.synced = true } }
        cache.apply(.replaced([ClusterUserAttribute(metadata: ObjectMeta(name: "u-abc12", resourceVersion: "1"), groups: [], enabled: true)]))
        cache.apply(.replaced([token(legacyHash: hash, version: "2")]))
        cache.apply(.replaced([HashSecret]()))
        #expect(review(cache).isAuthenticated)

        // Another replica migrated: the cleared token arrives first.
        cache.apply(.upserted(token(legacyHash: "", version: "4")))
        #expect(review(cache).isAuthenticated)
        // Then the Secret: the token now verifies against it.
        cache.apply(.upserted(HashSecret(metadata: ObjectMeta(name: "kubeconfig-u-abc12x7k2q", resourceVersion: "3"), hash: hash)))
        let decision = review(cache)
        #expect(decision.isAuthenticated)
        #expect(!decision.effects.migrateLegacyHash)
    }

    @Test("Without a Secret ever arriving, a cleared hash stops working once the carry limit passes")
    func carryIsBounded() async throws {
        let clock = MutableClock(Timestamp(seconds: 1_000))
        let cache = KubernetesRecordCache(store: RecordStore(source: "test"), clock: clock)
        for kind in RecordKind.allCases { cache.updateStatus(kind) { $0.synced = true } }
        cache.apply(.replaced([ClusterUserAttribute(metadata: ObjectMeta(name: "u-abc12", resourceVersion: "1"), groups: [], enabled: true)]))
        cache.apply(.replaced([token(legacyHash: hash, version: "2")]))
        cache.apply(.upserted(token(legacyHash: "", version: "3")))
        #expect(review(cache).isAuthenticated)
        // Just before the limit the hash is still carried, also across another event for the token.
        clock.advance(seconds: 29)
        cache.expireCarriedLegacyHashes()
        cache.apply(.upserted(token(legacyHash: "", version: "4")))
        #expect(review(cache).isAuthenticated)
        // Once the limit has passed on the injected clock, the token is what the API says: no hash.
        clock.advance(seconds: 2)
        cache.expireCarriedLegacyHashes()
        #expect(review(cache).refusalReason == .hashMissing)
        // A token that was never given a legacy hash is not carried.
        cache.apply(ReflectorEvent<ClusterAuthToken>.removed(name: "kubeconfig-u-abc12x7k2q"))
        cache.apply(.upserted(token(legacyHash: "", version: "5")))
        #expect(review(cache).refusalReason == .hashMissing)
    }

    @Test("Records served from the snapshot file become live when the last kind reports its list, even if its data was published first")
    func liveAfterListReport() {
        let store = RecordStore(source: "test")
        let cache = KubernetesRecordCache(store: store, clock: FixedClock(instant: Timestamp(seconds: 0)))
        cache.seed(from: RecordSnapshot(tokens: [], users: [], hashSecrets: []), writtenAt: nil)
        cache.publishIfReady()
        let fromSnapshot = store.status.generation
        // Every kind hands over its list, and the publisher runs before the kinds report "listed".
        cache.apply(.replaced([token(legacyHash: hash, version: "2")]))
        cache.publishIfReady()
        #expect(store.status.generation == fromSnapshot + 1)
        for kind in RecordKind.allCases {
            cache.updateStatus(kind) {
                $0.synced = true
                $0.fromSnapshot = false
            }
        }
        // The reports alone must lead to a publication from live data.
        cache.publishIfReady()
        #expect(store.status.generation == fromSnapshot + 2)
        #expect(!cache.describe().servingFromSnapshotFile)
    }
}
