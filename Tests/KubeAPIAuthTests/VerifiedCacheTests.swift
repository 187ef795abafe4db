import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import RancherAuth
import Testing

@Suite("Verified-token cache and failure counter")
struct VerifiedCacheTests {
    let versions = RecordVersions(token: "1", user: "2", secret: "3", legacyHash: false)

    @Test("An entry is reused only for the same token and the same record versions")
    func reuseRules() {
        let cache = VerifiedTokenCache(capacity: 100)
        let key = VerifiedTokenCache.key(for: "t:secret")
        #expect(!cache.contains(key, versions: versions))
        cache.insert(key, versions: versions)
        #expect(cache.contains(key, versions: versions))
        #expect(!cache.contains(VerifiedTokenCache.key(for: "t:other"), versions: versions))
        for changed in [
            RecordVersions(token: "9", user: "2", secret: "3", legacyHash: false),
            RecordVersions(token: "1", user: "9", secret: "3", legacyHash: false),
            RecordVersions(token: "1", user: "2", secret: "9", legacyHash: false),
            RecordVersions(token: "1", user: "2", secret: nil, legacyHash: true),
        ] {
            #expect(!cache.contains(key, versions: changed))
        }
        #expect(cache.hits == 1)
    }

    @Test("Records without versions are never cached; the cache stays bounded")
    func bounds() {
        let cache = VerifiedTokenCache(capacity: 32)
        let incomplete = RecordVersions(token: nil, user: "2", secret: "3", legacyHash: false)
        cache.insert(VerifiedTokenCache.key(for: "x"), versions: incomplete)
        #expect(cache.count == 0)
        for index in 0..<1000 { cache.insert(VerifiedTokenCache.key(for: "t\(index)"), versions: versions) }
        #expect(cache.count <= 32)
        #expect(cache.evictions >= 1000 - 32)
    }

    @Test("The failure counter flags a name after maxFailures within the window, forgets after it, and resets on success")
    func failureCounter() {
        let failures = FailureCounter(maxFailures: 3, window: .seconds(60))
        let start = ContinuousClock.now
        #expect(!failures.recordFailure("t", now: start))
        #expect(!failures.recordFailure("t", now: start))
        #expect(!failures.isSuspect("t", now: start))
        #expect(failures.recordFailure("t", now: start))
        #expect(failures.isSuspect("t", now: start + .seconds(59)))
        #expect(!failures.isSuspect("other", now: start))
        #expect(!failures.isSuspect("t", now: start + .seconds(61)))
        #expect(!failures.recordFailure("t", now: start + .seconds(61)), "a new window starts counting again")
        for _ in 0..<3 { failures.recordFailure("u") }
        #expect(failures.suspectCount == 1)
        failures.recordSuccess("u")
        #expect(!failures.isSuspect("u"))
        let disabled = FailureCounter(maxFailures: 0, window: .seconds(60))
        for _ in 0..<10 { disabled.recordFailure("t") }
        #expect(!disabled.isSuspect("t"))
    }
}
