import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import Logging
import NIOCore
import NIOPosix
import RancherAuth
import ServiceLifecycle
import Testing

@Suite("Expensive hash workers")
struct ExpensiveHashWorkersTests {
    /// A pending scrypt verification with Rancher's real parameters (~100 ms each).
    func pendingScrypt() throws -> PendingVerification {
        let token = ClusterAuthToken(metadata: ObjectMeta(name: "t"), userName: "u", enabled: true)
        let user = ClusterUserAttribute(metadata: ObjectMeta(name: "u"), groups: [], enabled: true)
        let hash = "$1:0001020304050607:15:8:1:X6GLi3D7VUKdL6s/6hl89ogxnrcJ2wTz3L2VqaVRJipJZel+uiaF+dUKsXyk+2IHQ3xD6NqMgaWhEXBFkB2B2Q"
        let snapshot = RecordSnapshot(tokens: [token], users: [user], hashSecrets: [HashSecret(metadata: ObjectMeta(name: "t"), hash: hash)])
        guard case .verify(let pending) = Authenticator().begin(token: "t:test-secret-key", snapshot: snapshot, now: Timestamp(seconds: 0)) else {
            throw ProcessErrorForTests.unexpected
        }
        return pending
    }

    enum ProcessErrorForTests: Error { case unexpected }

    @Test("Beyond threads + queue, verifications are refused instead of queued; accepted ones complete")
    func boundedQueue() async throws {
        let workers = ExpensiveHashWorkers(threads: 1, maxQueued: 1)
        let pending = try pendingScrypt()
        let first = workers.verify(pending)
        let second = workers.verify(pending)
        let third = workers.verify(pending)
        #expect(first != nil)
        #expect(second != nil)
        #expect(third == nil)
        #expect(await first!.value?.isAuthenticated == true)
        #expect(await second!.value?.isAuthenticated == true)
        #expect(workers.queued == 0)
        // Capacity is back once the work is done.
        let again = try #require(workers.verify(pending))
        #expect(await again.value?.isAuthenticated == true)
        try await workers.shutdown()
        #expect(workers.verify(pending) == nil)
    }

    @Test("One client holds at most its share of the places: another client and unattributed work still get one; the share comes back")
    func perClientShare() async throws {
        #expect(ExpensiveHashWorkers(threads: 1, maxQueued: 32).maxPerClient == 8)
        let workers = ExpensiveHashWorkers(threads: 1, maxQueued: 7, maxPerClient: 2)
        let pending = try pendingScrypt()
        let group = ServiceGroup(configuration: .init(services: [workers], logger: Logger(label: "test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let guesser = (0..<3).map { _ in workers.verify(pending, chargedTo: "192.0.2.7") }
            #expect(guesser.map { $0 != nil } == [true, true, false])
            let owner = try #require(workers.verify(pending, chargedTo: "198.51.100.1"))
            let webhook = try #require(workers.verify(pending))
            for future in guesser.compactMap({ $0 }) + [owner, webhook] {
                #expect(await future.value?.isAuthenticated == true)
            }
            let again = try #require(workers.verify(pending, chargedTo: "192.0.2.7"))
            #expect(await again.value?.isAuthenticated == true)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test("A Service: after the group's graceful shutdown the threads are gone and verifications are refused")
    func serviceLifecycle() async throws {
        let workers = ExpensiveHashWorkers(threads: 1, maxQueued: 1)
        let pending = try pendingScrypt()
        let group = ServiceGroup(configuration: .init(services: [workers], logger: Logger(label: "test")))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let running = try #require(workers.verify(pending))
            #expect(await running.value?.isAuthenticated == true)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(workers.verify(pending) == nil)
    }
}
