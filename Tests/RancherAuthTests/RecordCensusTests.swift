import RancherAuth
import Testing

/// The census of records and the chain of one token: every reason, and the answer for the correct
/// secret taken from the review's own rules.
@Suite("Record census and token diagnosis")
struct RecordCensusTests {
    static let now = Timestamp(seconds: 1_800_000_000)
    /// Spec §3.4's v1 vector: a SHA3 hash that parses (its secret is irrelevant here).
    static let hash = "$3:1:AAECAwQFBgc:JQzhvjFUqw7sLtERcKcxyLbQKyb2c4Tb2YchCRAogAvF+cJqR8FJEikdmT1yMUTko9By+2Vlo3pMJCFNGRiV1w"

    static func token(
        _ name: String, user: String = "u-alice", enabled: Bool = true, expiresAt: String = "", legacyHash: String = ""
    )
        -> ClusterAuthToken
    {
        ClusterAuthToken(
            metadata: ObjectMeta(name: name, resourceVersion: "1"), userName: user, enabled: enabled, expiresAt: expiresAt, legacyHash: legacyHash)
    }

    static func secret(_ name: String, _ hash: String = RecordCensusTests.hash) -> HashSecret {
        HashSecret(metadata: ObjectMeta(name: name, resourceVersion: "1"), hash: hash)
    }

    static func user(_ name: String, enabled: Bool = true, lastRefresh: String = "") -> ClusterUserAttribute {
        ClusterUserAttribute(
            metadata: ObjectMeta(name: name, resourceVersion: "1"), groups: ["g://a"], enabled: enabled, lastRefresh: lastRefresh)
    }

    /// One record of every kind of trouble beside a good token.
    static let snapshot = RecordSnapshot(
        tokens: [
            token("token-good"),
            token("token-nohash"),
            token("token-badhash"),
            token("token-v9"),
            token("token-legacy-bad", legacyHash: "not-a-hash"),
            token("token-legacy-good", legacyHash: hash),
            token("token-nouser", user: "u-ghost"),
            token("token-disabled", enabled: false),
            token("token-expired", expiresAt: "2020-01-01T00:00:00Z"),
            token("token-soon", expiresAt: "2099-01-01T00:00:00Z"),
            token("token-badexpiry", expiresAt: "tomorrow"),
            token("token-userdisabled", user: "u-off"),
            token("Token_Bad"),
            token("token-refresh", user: "u-badrefresh"),
        ],
        users: [user("u-alice"), user("u-off", enabled: false), user("u-lonely"), user("u-badrefresh", lastRefresh: "yesterday")],
        hashSecrets: [
            secret("token-good"), secret("token-badhash", "not-a-hash"), secret("token-v9", "$9:a:b"), secret("token-nouser"),
            secret("token-disabled"), secret("token-expired"), secret("token-soon"), secret("token-badexpiry"),
            secret("token-userdisabled"), secret("Token_Bad"), secret("token-gone"), secret("token-refresh"),
            // A Secret of the namespace that is no hash record (no `hash` entry): not counted, not reported.
            secret("serving-cert", ""),
        ],
        refreshPeriod: .enabled(nanoseconds: 3_600_000_000_000))

    struct Expected: Sendable, CustomTestStringConvertible {
        var kind: RecordFinding.Kind
        var name: String
        var reason: RecordFinding.Reason
        var testDescription: String { "\(kind.rawValue) \(name): \(reason.rawValue)" }
    }

    static let expected: [Expected] = [
        Expected(kind: .clusterAuthToken, name: "token-nohash", reason: .hashMissing),
        Expected(kind: .clusterAuthToken, name: "token-badhash", reason: .hashInvalid),
        Expected(kind: .clusterAuthToken, name: "token-v9", reason: .hashUnknownVersion),
        Expected(kind: .clusterAuthToken, name: "token-legacy-bad", reason: .hashInvalid),
        Expected(kind: .clusterAuthToken, name: "token-nouser", reason: .userMissing),
        Expected(kind: .clusterAuthToken, name: "token-disabled", reason: .disabled),
        Expected(kind: .clusterAuthToken, name: "token-expired", reason: .expired),
        Expected(kind: .clusterAuthToken, name: "token-badexpiry", reason: .expiryInvalid),
        Expected(kind: .clusterAuthToken, name: "token-userdisabled", reason: .userDisabled),
        Expected(kind: .clusterAuthToken, name: "Token_Bad", reason: .nameInvalid),
        Expected(kind: .clusterUserAttribute, name: "u-lonely", reason: .unreferenced),
        Expected(kind: .clusterUserAttribute, name: "u-badrefresh", reason: .lastRefreshInvalid),
        Expected(kind: .secret, name: "token-gone", reason: .unreferenced),
    ]

    @Test("Each troubled record is found with its reason", arguments: expected)
    func finding(_ expected: Expected) {
        let census = RecordCensus.take(Self.snapshot, now: Self.now)
        let found = census.findings.filter { $0.kind == expected.kind && $0.name == expected.name }
        #expect(found.map(\.reason) == [expected.reason], "\(found)")
    }

    @Test("Counts, usable tokens, and nothing reported of the good records or of Secrets that hold no hash")
    func counts() {
        let census = RecordCensus.take(Self.snapshot, now: Self.now)
        #expect(census.tokens == 14)
        #expect(census.users == 4)
        #expect(census.hashSecrets == 12)
        // token-good, token-legacy-good, token-soon (token-refresh's user has an unreadable lastRefresh).
        #expect(census.usableTokens == 3)
        #expect(census.findings.count == Self.expected.count)
        for clean in ["token-good", "token-legacy-good", "token-soon", "u-alice", "serving-cert"] {
            #expect(!census.findings.contains { $0.name == clean }, "\(clean)")
        }
        #expect(census.problems.count == Self.expected.filter { $0.reason.severity == .problem }.count)
        #expect(census.count(.clusterAuthToken, .hashInvalid) == 2)
    }

    @Test("A refreshing-off cluster does not report an unreadable lastRefresh (the review does not read it then)")
    func lastRefreshOnlyWhenRefreshing() {
        let snapshot = RecordSnapshot(
            tokens: [Self.token("token-a", user: "u-badrefresh")], users: [Self.user("u-badrefresh", lastRefresh: "x")],
            hashSecrets: [Self.secret("token-a")])
        #expect(RecordCensus.take(snapshot, now: Self.now).findings.isEmpty)
    }

    @Test("Unreadable objects from the source are part of the census, as problems")
    func unreadable() {
        let broken = RecordFinding(kind: .clusterAuthToken, name: "token-broken", reason: .unreadable, detail: "field enabled: expected Bool")
        let census = RecordCensus.take(.empty, unreadable: [broken], now: Self.now)
        #expect(census.problems == [broken])
    }

    @Test("Descriptions of a bad hash never quote it")
    func noHashInFindings() {
        let secretHash = "$3:1:c2VjcmV0:bm90LWEtZGlnZXN0LWF0LWFsbA-broken"
        let snapshot = RecordSnapshot(
            tokens: [Self.token("token-a")], users: [Self.user("u-alice")], hashSecrets: [Self.secret("token-a", secretHash)])
        let census = RecordCensus.take(snapshot, now: Self.now)
        #expect(!census.findings.isEmpty)
        for finding in census.findings {
            #expect(!(finding.detail ?? "").contains("c2VjcmV0"))
            #expect(!(finding.detail ?? "").contains("bm90"))
        }
    }

    struct Chain: Sendable, CustomTestStringConvertible {
        var name: String
        var authenticated: Bool
        var reason: RefusalReason?
        var testDescription: String { name }
    }

    @Test(
        "diagnose token: the answer for the correct secret is the review's own",
        arguments: [
            Chain(name: "token-good", authenticated: true),
            Chain(name: "token-legacy-good", authenticated: true),
            Chain(name: "token-disabled", authenticated: false, reason: .tokenDisabled),
            Chain(name: "token-expired", authenticated: false, reason: .tokenExpired),
            Chain(name: "token-nohash", authenticated: false, reason: .hashMissing),
            Chain(name: "token-nouser", authenticated: false, reason: .userNotFound),
            Chain(name: "token-v9", authenticated: false, reason: .hashInvalid),
            Chain(name: "token-userdisabled", authenticated: false, reason: .userDisabled),
            Chain(name: "token-absent", authenticated: false, reason: .tokenNotFound),
            Chain(name: "token-refresh", authenticated: false, reason: .userRefreshInvalid),
        ])
    func chain(_ chain: Chain) {
        let diagnosis = TokenDiagnosis(name: chain.name, snapshot: Self.snapshot, now: Self.now)
        #expect(diagnosis.answer.authenticated == chain.authenticated)
        #expect(diagnosis.answer.reason == chain.reason?.rawValue)
        if chain.authenticated {
            #expect(diagnosis.answer.username == "u-alice")
            #expect(diagnosis.answer.groups == ["g://a"])
            #expect(diagnosis.findings.isEmpty)
        }
        if chain.reason == .tokenNotFound {
            #expect(diagnosis.token == nil)
        } else {
            #expect(diagnosis.token != nil)
        }
    }

    @Test("diagnose token: the parts of the chain")
    func chainParts() {
        let expired = TokenDiagnosis(name: "token-expired", snapshot: Self.snapshot, now: Self.now)
        #expect(expired.token?.expiresInSeconds == 1_577_836_800 - 1_800_000_000)
        #expect(expired.hash?.source == "secret")
        #expect(expired.hash?.algorithm == "sha3")
        #expect(expired.hash?.problem == nil)
        #expect(expired.user?.groups == ["g://a"])
        #expect(expired.findings.map(\.reason) == [.expired])
        let legacy = TokenDiagnosis(name: "token-legacy-bad", snapshot: Self.snapshot, now: Self.now)
        #expect(legacy.hash?.source == "legacy")
        #expect(legacy.hash?.problem == "hash format invalid")
        let userless = TokenDiagnosis(name: "token-nouser", snapshot: Self.snapshot, now: Self.now)
        #expect(userless.user == nil)
        #expect(userless.findings.map(\.reason) == [.userMissing])
        #expect(!TokenDiagnosis(name: "Token_Bad", snapshot: Self.snapshot, now: Self.now).nameValid)
    }
}
