import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import NIOCore
import NIOEmbedded
import RancherAuth
import Synchronization
import Testing

@Suite("Open exchanges of the proxy, re-decided as records change")
struct OpenExchangesTests {
    /// The fixture's records, a registry over them, and what it ended.
    final class Harness {
        let store: RecordStore
        let clock: MutableClock
        let logs = LogCapture()
        let exchanges: OpenExchanges
        let metrics = ServiceMetrics()
        let loop = EmbeddedEventLoop()
        /// What the registry ended, by label (a class: the end closures share it).
        final class Ended: Sendable {
            let reasons = Mutex<[String: SessionEnd]>([:])
        }

        private let endedBox = Ended()
        var ended: [String: SessionEnd] { endedBox.reasons.withLock { $0 } }

        init(at instant: Timestamp = Timestamp(seconds: 1_800_000_000)) throws {
            store = try loadedStore()
            clock = MutableClock(instant)
            exchanges = OpenExchanges(store: store, clock: clock, metrics: metrics, logger: logs.logger(), auditEnabled: true)
        }

        var session: SessionIdentity {
            get throws {
                let snapshot = try #require(store.snapshot)
                return try #require(Authenticator().review(token: validToken, snapshot: snapshot, now: clock.now()).session)
            }
        }

        @discardableResult
        func open(_ label: String, _ session: SessionIdentity, reviewedAt generation: Int? = nil) -> OpenExchanges.Registration {
            exchanges.register(session, reviewedAt: generation, on: loop) { [endedBox] _, reason in
                endedBox.reasons.withLock { $0[label] = reason }
            }
        }

        /// Publishes the fixture's records with the token replaced by `token` (and `users` if given).
        func publish(token: (ClusterAuthToken) -> ClusterAuthToken, users: [ClusterUserAttribute]? = nil) throws {
            let snapshot = try #require(store.snapshot)
            store.publish(
                RecordSnapshot(
                    tokens: snapshot.tokens.values.map(token), users: users ?? snapshot.users.values.map(\.attribute),
                    hashSecrets: Array(snapshot.hashSecrets.values)),
                problemCount: 0, at: clock.now())
            loop.run()
        }
    }

    static func disabled(_ token: ClusterAuthToken) -> ClusterAuthToken {
        ClusterAuthToken(metadata: token.metadata, userName: token.userName, enabled: false, expiresAt: token.expiresAt)
    }

    @Test(
        "A publication that leaves the identity as it was ends nothing; one that revokes it ends every exchange of it, on its loop, with the reason")
    func publication() throws {
        let harness = try Harness()
        let session = try harness.session
        harness.open("watch", session)
        harness.open("exec", session)
        #expect(harness.exchanges.count == 2)
        // Another user added, lastUsedAt written: the same answer for this token.
        let extra = ClusterUserAttribute(metadata: ObjectMeta(name: "u-other"), groups: [], enabled: true)
        let users = try #require(harness.store.snapshot).users.values.map(\.attribute) + [extra]
        try harness.publish(
            token: {
                ClusterAuthToken(
                    metadata: $0.metadata, userName: $0.userName, enabled: true, expiresAt: $0.expiresAt,
                    lastUsedAt: Timestamp(seconds: 1_800_000_000))
            }, users: users)
        #expect(harness.ended.isEmpty)
        try harness.publish(token: Self.disabled)
        #expect(harness.ended == ["watch": .tokenDisabled, "exec": .tokenDisabled])
        #expect(harness.exchanges.count == 0)
        #expect(harness.logs.text.contains("msg=\"session ended\"") && harness.logs.text.contains("reason=token_disabled"))
        #expect(harness.logs.text.contains("user=u-abc12"))
        let exposition = String(decoding: harness.metrics.render(), as: UTF8.self)
        #expect(exposition.contains(#"kube_api_auth_proxy_sessions_ended_total{reason="token_disabled"} 2"#), "\(exposition)")
    }

    @Test("An exchange that ended by itself is never ended by a later revocation")
    func unregistered() throws {
        let harness = try Harness()
        let registration = harness.open("done", try harness.session)
        harness.exchanges.unregister(registration)
        try harness.publish(token: Self.disabled)
        #expect(harness.ended.isEmpty)
    }

    @Test("An identity the current records already refuse (a publication between its review and its registration) is ended at once")
    func registeredAfterRevocation() throws {
        let harness = try Harness()
        let session = try harness.session
        try harness.publish(token: Self.disabled)
        harness.open("late", session)
        harness.loop.run()
        #expect(harness.ended == ["late": .tokenDisabled])
    }

    @Test("Registered with the generation its review read: a publication since then still ends it at once")
    func registeredAfterRevocationWithGeneration() throws {
        let harness = try Harness()
        let generation = harness.store.generation
        let session = try harness.session
        try harness.publish(token: Self.disabled)
        harness.open("late", session, reviewedAt: generation)
        harness.loop.run()
        #expect(harness.ended == ["late": .tokenDisabled])
    }

    @Test("Registered while its review's records are current: not re-decided, yet its expiresAt still ends it just after it passes")
    func deadlineWithoutRecheck() throws {
        try Self.endsJustAfterExpiry(registeredWithItsGeneration: true)
        let expiry = try #require(RFC3339.parse("2099-01-01T00:00:00Z"))
        // And a later revocation still reaches one that stays open (no deadline passed yet).
        let other = try Harness(at: Timestamp(seconds: expiry.seconds - 60))
        other.open("exec", try other.session, reviewedAt: other.store.generation)
        try other.publish(token: Self.disabled)
        #expect(other.ended == ["exec": .tokenDisabled])
    }

    @Test("The token's expiresAt ends its exchange just after it passes: the injected clock and the loop's virtual time, no polling")
    func deadline() throws {
        try Self.endsJustAfterExpiry(registeredWithItsGeneration: false)
    }

    /// An exchange opened a minute before the fixture token's expiry (2099-01-01T00:00:00Z) is
    /// open a second before it and ended a second after, on the injected clock and virtual time.
    static func endsJustAfterExpiry(registeredWithItsGeneration: Bool) throws {
        let expiry = try #require(RFC3339.parse("2099-01-01T00:00:00Z"))
        let harness = try Harness(at: Timestamp(seconds: expiry.seconds - 60))
        let generation = registeredWithItsGeneration ? harness.store.generation : nil
        harness.open("watch", try harness.session, reviewedAt: generation)
        harness.clock.advance(seconds: 59)
        harness.loop.advanceTime(by: .seconds(59))
        #expect(harness.ended.isEmpty)
        harness.clock.advance(seconds: 2)
        harness.loop.advanceTime(by: .seconds(2))
        #expect(harness.ended == ["watch": .tokenExpired])
    }

    @Test("A deadline timer that fires while the wall clock still says valid is set again, so the exchange still ends at its expiry")
    func clockBehindTimer() throws {
        let expiry = try #require(RFC3339.parse("2099-01-01T00:00:00Z"))
        let harness = try Harness(at: Timestamp(seconds: expiry.seconds - 60))
        harness.open("watch", try harness.session)
        // The loop's timer runs out while the injected wall clock is still a second short of it.
        harness.clock.advance(seconds: 59)
        harness.loop.advanceTime(by: .seconds(61))
        #expect(harness.ended.isEmpty)
        harness.clock.advance(seconds: 2)
        harness.loop.advanceTime(by: .seconds(2))
        #expect(harness.ended == ["watch": .tokenExpired])
    }
}
