import Crypto
import RancherAuth
import Testing

/// The re-decision of an open exchange: the identity a review let through, against later records.
@Suite("Sessions: open exchanges re-decided against new records")
struct SessionTests {
    struct Change: CustomTestStringConvertible, Sendable {
        var name: String
        var apply: @Sendable (inout Fixture) -> Void
        var expected: SessionEnd?
        var testDescription: String { name }
    }

    static let changes: [Change] = [
        Change(name: "nothing changed", apply: { _ in }, expected: nil),
        Change(name: "lastUsedAt written (by this service)", apply: { $0.setCAT(lastUsedAt: .some(Fixture.now)) }, expected: nil),
        Change(name: "the user's lastRefresh changed", apply: { $0.setCUA(lastRefresh: "2026-05-01T00:00:00Z") }, expected: nil),
        Change(
            name: "the legacy hash migrated into its Secret",
            apply: { fixture in
                // Before: the hash in the token, no Secret; after: the same hash in the Secret.
                fixture.setCAT(legacyHash: "")
            }, expected: nil),
        Change(name: "token disabled", apply: { $0.setCAT(enabled: false) }, expected: .tokenDisabled),
        Change(
            name: "token deleted", apply: { $0.cat = ClusterAuthToken(metadata: ObjectMeta(name: "other"), userName: "u-abc12", enabled: true) },
            expected: .tokenDeleted),
        Change(name: "token expired", apply: { $0.setCAT(expiresAt: "2026-06-01T11:00:00Z") }, expected: .tokenExpired),
        Change(name: "token expiry unreadable", apply: { $0.setCAT(expiresAt: "soon") }, expected: .tokenExpired),
        Change(name: "hash Secret deleted", apply: { $0.secret = nil }, expected: .hashChanged),
        Change(
            name: "hash Secret rotated",
            apply: { fixture in
                fixture.secret = HashSecret(metadata: ObjectMeta(name: Fixture.tokenName), hash: "$3:1:AQECAwQFBgc:\(v1Digest)")
            }, expected: .hashChanged),
        Change(name: "user disabled", apply: { $0.setCUA(enabled: false) }, expected: .userDisabled),
        Change(name: "user deleted", apply: { $0.cua = nil }, expected: .userDeleted),
        Change(name: "groups changed", apply: { $0.setCUA(groups: ["github_org://456"]) }, expected: .groupsChanged),
        Change(name: "groups reordered", apply: { $0.setCUA(groups: ["github_team://123", "github_org://456"]) }, expected: .groupsChanged),
        Change(
            name: "the token now names another user",
            apply: { fixture in
                fixture.cat = ClusterAuthToken(metadata: fixture.cat.metadata, userName: "u-other", enabled: true, expiresAt: "2099-01-01T00:00:00Z")
            }, expected: .userChanged),
    ]

    @Test("A token's session after each kind of change", arguments: changes)
    func tokenSession(_ change: Change) throws {
        var fixture = Fixture()
        if change.name.contains("legacy hash") {
            // Verified through the deprecated in-object hash first.
            fixture.setCAT(legacyHash: "$3:1:AAECAwQFBgc:\(v1Digest)")
        }
        let session = try #require(fixture.review().session)
        #expect(session.recheck(against: fixture.snapshot, now: Fixture.now).ended == nil)
        change.apply(&fixture)
        #expect(session.recheck(against: fixture.snapshot, now: Fixture.now).ended == change.expected)
    }

    @Test("A session carries the verified hash, the user, the groups and the token's expiry; a refusal carries none")
    func identity() throws {
        let fixture = Fixture()
        let session = try #require(fixture.review().session)
        #expect(session.user == "u-abc12")
        #expect(session.groups == ["github_org://456", "github_team://123"])
        #expect(session.deadline == RFC3339.parse("2099-01-01T00:00:00Z"))
        guard case .token(let name, _) = session.credential else {
            Issue.record("not a token session")
            return
        }
        #expect(name == Fixture.tokenName)
        #expect(fixture.review("\(Fixture.tokenName):wrong").session == nil)
    }

    @Test("A moved expiresAt moves the deadline an open session is re-decided at")
    func movedDeadline() throws {
        var fixture = Fixture()
        let session = try #require(fixture.review().session)
        #expect(session.recheck(against: fixture.snapshot, now: Fixture.now) == .keep(until: RFC3339.parse("2099-01-01T00:00:00Z")))
        fixture.setCAT(expiresAt: "2026-06-01T12:00:05Z")
        #expect(session.recheck(against: fixture.snapshot, now: Fixture.now) == .keep(until: RFC3339.parse("2026-06-01T12:00:05Z")))
        fixture.setCAT(expiresAt: "")
        #expect(session.recheck(against: fixture.snapshot, now: Fixture.now) == .keep(until: nil))
    }

    @Test("The token's own expiry ends the session after the exact instant, not at it")
    func expiryInstant() throws {
        var fixture = Fixture()
        fixture.setCAT(expiresAt: "2026-06-01T13:00:00Z")
        let session = try #require(fixture.review().session)
        let expiry = try #require(RFC3339.parse("2026-06-01T13:00:00Z"))
        #expect(session.deadline == expiry)
        #expect(session.recheck(against: fixture.snapshot, now: expiry).ended == nil)
        #expect(session.recheck(against: fixture.snapshot, now: expiry.adding(nanoseconds: 1)).ended == .tokenExpired)
    }

    @Test("An emergency token's session: revoked, key removed or replaced, expired (exp + leeway), user changes; others' revocations do not touch it")
    func emergencySession() throws {
        let emergency = EmergencyFixture()
        let access = try emergency.access()
        let decision = try emergency.review(try emergency.token(), access: access)
        let session = try #require(decision.session)
        func snapshot(_ access: EmergencyAccess?, users: [ClusterUserAttribute]? = nil) -> RecordSnapshot {
            EmergencyFixture.snapshot(access: access, users: users)
        }
        let now = EmergencyFixture.now
        #expect(session.recheck(against: snapshot(access), now: now).ended == nil)
        #expect(session.recheck(against: snapshot(try emergency.access(revoked: ["other-jti"])), now: now).ended == nil)
        #expect(session.recheck(against: snapshot(try emergency.access(revoked: ["j-1"])), now: now).ended == .emergencyRevoked)
        #expect(session.recheck(against: snapshot(nil), now: now).ended == .emergencyKeyRemoved)
        let replaced = EmergencyFixture()  // another key under the same kid
        #expect(session.recheck(against: snapshot(try replaced.access()), now: now).ended == .emergencyKeyRemoved)
        let exp = now.seconds + 3600
        #expect(session.deadline == Timestamp(seconds: exp + EmergencyAccess.leeway))
        #expect(session.recheck(against: snapshot(access), now: Timestamp(seconds: exp + EmergencyAccess.leeway - 1)).ended == nil)
        #expect(session.recheck(against: snapshot(access), now: Timestamp(seconds: exp + EmergencyAccess.leeway)).ended == .emergencyExpired)
        let disabled = [ClusterUserAttribute(metadata: ObjectMeta(name: "u-1", resourceVersion: "2"), groups: ["g://ops"], enabled: false)]
        #expect(session.recheck(against: snapshot(access, users: disabled), now: now).ended == .userDisabled)
        let regrouped = [ClusterUserAttribute(metadata: ObjectMeta(name: "u-1", resourceVersion: "2"), groups: ["g://new"], enabled: true)]
        #expect(session.recheck(against: snapshot(access, users: regrouped), now: now).ended == .groupsChanged)
    }

    @Test("Instants far apart give a clamped, never trapping, nanosecond distance")
    func distanceClamped() {
        let now = Timestamp(seconds: 1_800_000_000)
        #expect(now.nanoseconds(until: Timestamp(seconds: 1_800_000_001, nanoseconds: 5)) == 1_000_000_005)
        #expect(now.nanoseconds(until: Timestamp(seconds: 1_799_999_999)) == -1_000_000_000)
        let limit: Int64 = 30 * 365 * 86_400 * 1_000_000_000
        #expect(now.nanoseconds(until: Timestamp(seconds: Int64.max)) == limit)
        #expect(Timestamp(seconds: Int64.max).nanoseconds(until: Timestamp(seconds: Int64.min)) == -limit)
    }
}
