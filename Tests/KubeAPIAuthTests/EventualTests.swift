import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import Synchronization
import Testing

@Suite("Eventual: the one now-or-later")
struct EventualTests {
    @Test("A callback registered before the completion runs once, with the first value; one registered after runs at once")
    func completionOrder() {
        let completion = Completion<Int>()
        let seen = Mutex<[String]>([])
        completion.whenComplete { value in seen.withLock { $0.append("before \(value)") } }
        completion.complete(1)
        completion.complete(2)
        completion.whenComplete { value in seen.withLock { $0.append("after \(value)") } }
        #expect(seen.withLock { $0 } == ["before 1", "after 1"])
    }

    @Test("map and flatMap keep a now value now, and chain late ones")
    func chaining() async {
        let now = Eventual.now(2).map { $0 * 10 }
        guard case .now(20) = now else {
            Issue.record("map of a now value is not now: \(now)")
            return
        }
        let first = Completion<Int>()
        let second = Completion<String>()
        let chained = Eventual.later(first).flatMap { value in Eventual<String>.later(second).map { "\($0)\(value)" } }
        guard case .later = chained else {
            Issue.record("a late value became now")
            return
        }
        first.complete(7)
        second.complete("x")
        #expect(await chained.value == "x7")
    }
}
