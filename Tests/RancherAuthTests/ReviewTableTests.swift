import RancherAuth
import Testing

/// Spec §10's compatibility scenarios T1–T20, adapted to DESIGN.md's decisions (refusals are
/// `authenticated:false` with a reason; the apiVersion is echoed; writes are side effects).
struct Fixture {
    static let tokenName = "kubeconfig-u-abc12x7k2q"
    static let token = "\(tokenName):test-secret-key"
    static let now = RFC3339.parse("2026-06-01T12:00:00.250Z")!

    var cat = ClusterAuthToken(
        metadata: ObjectMeta(name: tokenName, namespace: "cattle-system", resourceVersion: "10"),
        userName: "u-abc12", enabled: true, expiresAt: "2099-01-01T00:00:00Z")
    var secret: HashSecret? = HashSecret(
        metadata: ObjectMeta(name: tokenName, namespace: "cattle-system", resourceVersion: "11"),
        hash: "$3:1:AAECAwQFBgc:\(v1Digest)")
    var cua: ClusterUserAttribute? = ClusterUserAttribute(
        metadata: ObjectMeta(name: "u-abc12", namespace: "cattle-system", resourceVersion: "12"),
        groups: ["github_org://456", "github_team://123"], enabled: true, lastRefresh: "2026-01-01T00:00:00Z")
    var refresh = RefreshPeriod.disabled

    var snapshot: RecordSnapshot {
        RecordSnapshot(tokens: [cat], users: cua.map { [$0] } ?? [], hashSecrets: secret.map { [$0] } ?? [], refreshPeriod: refresh)
    }

    func review(_ token: String = Fixture.token, at now: Timestamp = Fixture.now) -> Decision {
        Authenticator().review(token: token, snapshot: snapshot, now: now)
    }

    mutating func setCAT(enabled: Bool? = nil, expiresAt: String? = nil, legacyHash: String? = nil, lastUsedAt: Timestamp?? = nil) {
        cat = ClusterAuthToken(
            metadata: cat.metadata, userName: cat.userName, enabled: enabled ?? cat.enabled,
            expiresAt: expiresAt ?? cat.expiresAt, lastUsedAt: lastUsedAt ?? cat.lastUsedAt,
            legacyHash: legacyHash ?? cat.legacyHash)
    }

    mutating func setCUA(groups: [String]? = nil, enabled: Bool? = nil, needsRefresh: Bool? = nil, lastRefresh: String? = nil) {
        let current = cua!
        cua = ClusterUserAttribute(
            metadata: current.metadata, groups: groups ?? current.groups, enabled: enabled ?? current.enabled,
            needsRefresh: needsRefresh ?? current.needsRefresh, lastRefresh: lastRefresh ?? current.lastRefresh)
    }
}

private func body(_ decision: Decision, _ version: TokenReviewAPIVersion = .v1beta1) -> String? {
    guard case .authenticated(let user) = decision.outcome else { return nil }
    return String(decoding: user.authenticatedBody(for: version), as: UTF8.self)
}

@Suite("Review table (spec §10, adapted)")
struct ReviewTableTests {
    @Test("T1 valid token: user, groups in order, lastUsedAt to the second")
    func t1() {
        let decision = Fixture().review()
        #expect(
            body(decision)
                == #"{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","status":{"authenticated":true,"user":{"username":"u-abc12","groups":["github_org://456","github_team://123"]}}}"#
        )
        #expect(decision.effects == SideEffects(touchLastUsedAt: RFC3339.parse("2026-06-01T12:00:00Z")))
        #expect(decision.hashAlgorithm == .sha3)
        #expect(decision.tokenName == Fixture.tokenName)
    }

    @Test("T2 ext/ prefixed token")
    func t2() {
        #expect(Fixture().review("ext/" + Fixture.token).isAuthenticated)
    }

    @Test("T3 wrong secret")
    func t3() {
        let decision = Fixture().review("\(Fixture.tokenName):test-secret-kez")
        #expect(decision.refusalReason == .secretMismatch)
        #expect(decision.effects.isEmpty)
    }

    @Test("T4 token disabled")
    func t4() {
        var fixture = Fixture()
        fixture.setCAT(enabled: false)
        #expect(fixture.review().refusalReason == .tokenDisabled)
    }

    @Test("T5 user disabled")
    func t5() {
        var fixture = Fixture()
        fixture.setCUA(enabled: false)
        #expect(fixture.review().refusalReason == .userDisabled)
    }

    @Test("T6 user attribute deleted")
    func t6() {
        var fixture = Fixture()
        fixture.cua = nil
        #expect(fixture.review().refusalReason == .userNotFound)
    }

    @Test("T7 expiry: past, garbage, absent, exact instant")
    func t7() {
        var fixture = Fixture()
        fixture.setCAT(expiresAt: "2026-06-01T11:59:00Z")
        #expect(fixture.review().refusalReason == .tokenExpired)
        fixture.setCAT(expiresAt: "garbage")
        #expect(fixture.review().refusalReason == .tokenExpiryInvalid)
        fixture.setCAT(expiresAt: "")
        #expect(fixture.review().isAuthenticated)
        // Valid at the exact expiry instant, refused one nanosecond later.
        fixture.setCAT(expiresAt: "2026-06-01T12:00:00.25Z")
        #expect(fixture.review().isAuthenticated)
        fixture.setCAT(expiresAt: "2026-06-01T14:00:00.249999999+02:00")
        #expect(fixture.review().refusalReason == .tokenExpired)
    }

    @Test("T8 no Secret and no legacy hash")
    func t8() {
        var fixture = Fixture()
        fixture.secret = nil
        #expect(fixture.review().refusalReason == .hashMissing)
    }

    @Test("T9 legacy CAT.hash verifies and asks for migration; it wins over the Secret")
    func t9() {
        var fixture = Fixture()
        fixture.secret = nil
        fixture.setCAT(legacyHash: "$3:1:AAECAwQFBgc:\(v1Digest)")
        let decision = fixture.review()
        #expect(decision.isAuthenticated)
        #expect(decision.effects.migrateLegacyHash)
        // The legacy field wins even when a Secret with another hash exists.
        fixture.secret = HashSecret(metadata: ObjectMeta(name: Fixture.tokenName), hash: "$2:AAECAwQFBgc:\(v4Digest)")
        fixture.setCAT(legacyHash: "$3:1:AAECAwQFBgc:\(v13Digest)")
        #expect(fixture.review().refusalReason == .secretMismatch)
    }

    @Test(
        "T10 Secret holds SHA-256 or scrypt",
        arguments: [
            "$2:AAECAwQFBgc:\(v4Digest)", "$1:0001020304050607:15:8:1:\(v7Key)",
        ])
    func t10(hash: String) {
        var fixture = Fixture()
        fixture.secret = HashSecret(metadata: ObjectMeta(name: Fixture.tokenName), hash: hash)
        #expect(fixture.review().isAuthenticated)
    }

    @Test("T11 Secret holds an N-vector", arguments: negativeVectors)
    func t11(vector: HashVector) {
        var fixture = Fixture()
        fixture.secret = HashSecret(metadata: ObjectMeta(name: Fixture.tokenName), hash: vector.hash)
        let reason = fixture.review("\(Fixture.tokenName):\(vector.secret)").refusalReason
        #expect(reason == .hashInvalid || reason == .secretMismatch)
    }

    @Test("T12 empty groups: no groups key")
    func t12() {
        var fixture = Fixture()
        fixture.setCUA(groups: [])
        #expect(
            body(fixture.review())
                == #"{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","status":{"authenticated":true,"user":{"username":"u-abc12"}}}"#
        )
    }

    @Test("T13 refresh period 0 and lastRefresh in the past: needsRefresh requested")
    func t13() {
        var fixture = Fixture()
        fixture.refresh = RefreshPeriod(configMapValue: "0")
        let decision = fixture.review()
        #expect(decision.isAuthenticated)
        #expect(decision.effects.requestUserRefresh)
        // Not again while the user already needs a refresh, nor before the period has passed.
        fixture.setCUA(needsRefresh: true)
        #expect(!fixture.review().effects.requestUserRefresh)
        fixture.setCUA(needsRefresh: false, lastRefresh: "2026-06-01T11:59:00Z")
        fixture.refresh = RefreshPeriod(configMapValue: "3600")
        #expect(!fixture.review().effects.requestUserRefresh)
    }

    @Test("T14 refresh enabled and lastRefresh unreadable: refused")
    func t14() {
        var fixture = Fixture()
        fixture.refresh = RefreshPeriod(configMapValue: "0")
        fixture.setCUA(lastRefresh: "garbage")
        #expect(fixture.review().refusalReason == .userRefreshInvalid)
        fixture.refresh = .disabled
        #expect(fixture.review().isAuthenticated)
    }

    @Test("T15 refresh ConfigMap absent or invalid: no refresh request", arguments: [String?.none, "abc", "", "-5"])
    func t15(value: String?) {
        var fixture = Fixture()
        fixture.refresh = RefreshPeriod(configMapValue: value)
        let decision = fixture.review()
        #expect(decision.isAuthenticated)
        #expect(!decision.effects.requestUserRefresh)
    }

    @Test("T16 lastUsedAt already in this second: no write")
    func t16() {
        var fixture = Fixture()
        fixture.setCAT(lastUsedAt: .some(RFC3339.parse("2026-06-01T12:00:00Z")))
        let decision = fixture.review()
        #expect(decision.isAuthenticated)
        #expect(decision.effects.touchLastUsedAt == nil)
        #expect(fixture.review(at: Fixture.now.adding(nanoseconds: 1_000_000_000)).effects.touchLastUsedAt != nil)
    }

    @Test("T17 tokens that are not Rancher-shaped are a bare refusal", arguments: ["nocolon", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"])
    func t17(token: String) {
        let decision = Fixture().review(token)
        #expect(decision.refusalReason == .notRancherToken)
        #expect(decision.tokenName == nil)
    }

    @Test("T20 v1 answers in v1")
    func t20() {
        #expect(body(Fixture().review(), .v1)?.hasPrefix(#"{"apiVersion":"authentication.k8s.io/v1","#) == true)
    }

    @Test(
        "Unknown token names, ext/ext/ and case variants are not found",
        arguments: [
            "nope:test-secret-key", "ext/ext/\(Fixture.token)", "EXT/\(Fixture.token)", ":test-secret-key", "ext/:x",
        ])
    func notFound(token: String) {
        #expect(Fixture().review(token).refusalReason == .tokenNotFound)
    }

    @Test("Empty secret is a mismatch, never a match")
    func emptySecret() {
        #expect(Fixture().review("\(Fixture.tokenName):").refusalReason == .secretMismatch)
    }

    @Test("Scrypt verification is deferred to the caller")
    func scryptDeferred() {
        var fixture = Fixture()
        fixture.secret = HashSecret(
            metadata: ObjectMeta(name: Fixture.tokenName), hash: "$1:0001020304050607:4:8:1:/45XGcbps99HkeBlZkuK1CBl4VpRb7KSnL89RABqwdU")
        guard case .verify(let pending) = Authenticator().begin(token: Fixture.token, snapshot: fixture.snapshot, now: Fixture.now) else {
            Issue.record("expected a pending verification")
            return
        }
        #expect(pending.isExpensive)
        #expect(pending.run().isAuthenticated)
        #expect(pending.decide(secretMatches: false).refusalReason == .secretMismatch)
    }
}
