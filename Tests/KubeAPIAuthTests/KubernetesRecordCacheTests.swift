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

    @Test("The record kinds read their own list pages: each item a record with its name and resourceVersion; a page they leave is nil")
    func listPages() throws {
        func page<T: ListPageDecodable>(_ type: T.Type, _ text: String) -> ListPage<T>? {
            Array(text.utf8).withUnsafeBytes { T.decodeListPage($0) }
        }
        let tokens = try #require(
            page(
                ClusterAuthToken.self,
                #"{"metadata":{"resourceVersion":"9","continue":"c"},"items":[{"metadata":{"name":"t-1","resourceVersion":"4"},"userName":"u-a","enabled":true}]}"#
            ))
        #expect(tokens.items.map(\.name) == ["t-1"] && tokens.items.map(\.resourceVersion) == ["4"])
        #expect(tokens.resourceVersion == "9" && tokens.continueToken == "c")
        #expect(try tokens.items[0].result.get().userName == "u-a")
        let secrets = try #require(page(HashSecret.self, #"{"items":[{"metadata":{"name":"t-1"},"data":{"hash":"eA=="}}]}"#))
        #expect(secrets.items.map(\.name) == ["t-1"] && secrets.items.map(\.resourceVersion) == [nil])
        let users = try #require(page(ClusterUserAttribute.self, #"{"items":[{"metadata":{"name":"u-a"},"groups":["g"],"enabled":true}]}"#))
        #expect(try users.items[0].result.get().groups == ["g"])
        // A wrong type is JSONDecoder's to word (the item fails on its own there).
        #expect(page(ClusterAuthToken.self, #"{"items":[{"metadata":{"name":"t-1"},"enabled":"yes"}]}"#) == nil)
    }

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

    /// What the published snapshot holds: token names, users, Secrets, the refresh ConfigMap.
    private func published(_ cache: KubernetesRecordCache) -> (tokens: Set<String>, users: Set<String>, secrets: Set<String>, refresh: Bool) {
        cache.publishIfReady()
        let snapshot = cache.store.snapshot!
        return (Set(snapshot.tokens.keys), Set(snapshot.users.keys), Set(snapshot.hashSecrets.keys), snapshot.refreshConfigMap != nil)
    }

    private func named(_ name: String) -> ClusterAuthToken {
        ClusterAuthToken(metadata: ObjectMeta(name: name, resourceVersion: "1"), userName: "u-abc12", enabled: true)
    }

    @Test("A list handed over in parts changes nothing until it completes, and a list that broke off leaves nothing behind")
    func pagedLists() {
        let cache = KubernetesRecordCache(store: RecordStore(source: "test"), clock: FixedClock(instant: Timestamp(seconds: 0)))
        for kind in RecordKind.allCases { cache.updateStatus(kind) { $0.synced = true } }
        cache.apply(.replaced([named("old")]))
        cache.apply(.replaced([ClusterUserAttribute(metadata: ObjectMeta(name: "u-old"), groups: [], enabled: true)]))
        cache.apply(.replaced([HashSecret(metadata: ObjectMeta(name: "old"), hash: hash)]))
        cache.apply(.replaced([RefreshConfigMap]()))
        #expect(published(cache).tokens == ["old"])

        // A list begins and delivers parts: what is published does not change.
        cache.apply(ReflectorEvent<ClusterAuthToken>.listStarted)
        cache.apply(.listPart([named("a"), named("b")]))
        cache.apply(ReflectorEvent<HashSecret>.listStarted)
        cache.apply(.listPart([HashSecret(metadata: ObjectMeta(name: "a"), hash: hash)]))
        cache.apply(ReflectorEvent<ClusterUserAttribute>.listStarted)
        cache.apply(.listPart([ClusterUserAttribute(metadata: ObjectMeta(name: "u-a"), groups: [], enabled: true)]))
        cache.apply(ReflectorEvent<RefreshConfigMap>.listStarted)
        cache.apply(.listPart([RefreshConfigMap(metadata: ObjectMeta(name: RefreshPeriod.configMapName), value: "0")]))
        var now = published(cache)
        #expect(now.tokens == ["old"] && now.secrets == ["old"] && now.users == ["u-old"] && !now.refresh)

        // The token list breaks off; the next one starts over: its parts and its last page are all there is.
        cache.apply(ReflectorEvent<ClusterAuthToken>.listStarted)
        cache.apply(.listPart([named("c")]))
        cache.apply(.replaced([named("d")]))
        // The others complete: parts and the last page together.
        cache.apply(.replaced([HashSecret(metadata: ObjectMeta(name: "b"), hash: hash)]))
        cache.apply(.replaced([ClusterUserAttribute(metadata: ObjectMeta(name: "u-b"), groups: [], enabled: true)]))
        cache.apply(.replaced([RefreshConfigMap]()))
        now = published(cache)
        #expect(now.tokens == ["c", "d"])
        #expect(now.secrets == ["a", "b"])
        #expect(now.users == ["u-a", "u-b"])
        #expect(now.refresh)

        // A `replaced` with no list started before it is the whole list.
        cache.apply(.replaced([named("e")]))
        #expect(published(cache).tokens == ["e"])
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
