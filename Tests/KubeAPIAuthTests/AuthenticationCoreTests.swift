import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import NIOEmbedded
import RancherAuth
import Testing

@Suite("Authentication core")
struct AuthenticationCoreTests {
    @Test(
        "No lock-out by name: after 1,000 wrong secrets for a never-verified token, its correct secret is accepted; the refusals are marked guessing")
    func noLockOutByName() throws {
        let logs = LogCapture()
        let core = AuthenticationCore(
            store: try loadedStore(), clock: FixedClock(instant: Timestamp(seconds: 1_800_000_000)),
            workers: ExpensiveHashWorkers(threads: 1, maxQueued: 1), effects: ReadOnlySourceEffects(),
            failures: FailureCounter(maxFailures: 10, window: .seconds(60)), logger: logs.logger())
        let name = String(validToken.prefix { $0 != ":" })
        var reasons: [RefusalReason: Int] = [:]
        for attempt in 0..<1000 {
            guard
                case .now(.refused(let reason)) = core.authenticate(
                    token: "\(name):wrong-\(attempt)", source: "192.0.2.7:4000", start: .now)
            else {
                Issue.record("attempt \(attempt) was not refused at once")
                return
            }
            reasons[reason, default: 0] += 1
        }
        #expect(reasons == [.secretMismatch: 1000], "every wrong secret is checked and refused as such")
        guard case .now(.authenticated(let user, _)) = core.authenticate(token: validToken, source: "198.51.100.1:5000", start: .now)
        else {
            Issue.record("the owner's correct secret was refused after someone else's wrong ones")
            return
        }
        #expect(user.attribute.name == "u-abc12")
        #expect(logs.text.contains("guessing=true"))
        #expect(!logs.text.contains("wrong-"))
    }
}
