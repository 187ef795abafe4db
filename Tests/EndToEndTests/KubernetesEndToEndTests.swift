import Foundation
import KubeAPITestServer
import NIOCore
import NIOHTTP1
import Testing
import TestSupport

/// The real binary against the in-repo API server, with a Rancher stand-in writing records.
@Suite("kube-api-auth serve from a Kubernetes API, end to end", .serialized)
struct KubernetesEndToEndTests {
    struct Environment {
        let server: KubeAPITestServer
        let rancher: RancherStandIn
        let scratch: TemporaryDirectory
        let kubeconfig: String

        init(tls: Bool = true) async throws {
            server = try KubeAPITestServer(configuration: .init(tls: tls ? SelfSignedIdentity() : nil))
            try await server.start()
            rancher = RancherStandIn(server: server)
            try await rancher.installCRDs()
            scratch = try TemporaryDirectory()
            kubeconfig = try writeKubeconfig(for: server, in: scratch)
        }

        func startService(_ extra: [String] = []) throws -> ServiceProcess {
            try ServiceProcess(global: ["--debug", "--kubeconfig", kubeconfig], serve: ["--last-used-interval", "0.2"] + extra)
        }

        /// Until the service answers reviews from the API's records (all four kinds listed and
        /// published; the kinds list concurrently, so no single "listed" line says that).
        func waitUntilReady(_ service: ServiceProcess) throws {
            try service.waitForLog(containing: "msg=\"records synced from the API; answering reviews\"")
        }
    }

    @Test("Tokens created, disabled, deleted, expired, user disabled, groups changed downstream: reflected in the answers")
    func changesPropagate() async throws {
        let environment = try await Environment()
        let rancher = environment.rancher
        let service = try environment.startService()
        try environment.waitUntilReady(service)

        let bearer = try await rancher.createToken(user: "u-alice", groups: ["github_org://1"])
        #expect(authenticated(try await reviewUntil(service, bearer, authenticated)))

        try await rancher.ensureUser("u-alice", groups: ["github_org://1", "github_team://2"])
        #expect(try await reviewUntil(service, bearer) { $0.contains("github_team://2") }.contains(#""groups":["github_org://1","github_team://2"]"#))

        let name = String(bearer.prefix { $0 != ":" })
        try await rancher.patch(rancher.tokens + "/\(name)", #"{"enabled":false}"#)
        #expect(try await reviewUntil(service, bearer) { $0.contains("disabled") }.contains(#""error":"token is disabled""#))
        try await rancher.patch(rancher.tokens + "/\(name)", #"{"enabled":true}"#)
        #expect(authenticated(try await reviewUntil(service, bearer, authenticated)))

        try await rancher.patch(rancher.users + "/u-alice", #"{"enabled":false}"#)
        #expect(try await reviewUntil(service, bearer) { $0.contains("user is disabled") }.contains("user is disabled"))
        try await rancher.patch(rancher.users + "/u-alice", #"{"enabled":true}"#)
        #expect(authenticated(try await reviewUntil(service, bearer, authenticated)))

        try await rancher.patch(rancher.tokens + "/\(name)", #"{"expiresAt":"2020-01-01T00:00:00Z"}"#)
        #expect(try await reviewUntil(service, bearer) { $0.contains("expired") }.contains("token has expired"))

        try await rancher.deleteToken(bearer)
        #expect(try await reviewUntil(service, bearer) { $0.contains("not found") }.contains("token not found"))
        #expect(try service.stop() == 0)
        #expect(!service.output.contains(String(bearer.drop { $0 != ":" }.dropFirst())))
    }

    @Test(
        "Rancher stopped: synced tokens keep working and kubectl revocations downstream still apply",
        .enabled(if: kubectlPath != nil, "needs kubectl"))
    func rancherStopped() async throws {
        let environment = try await Environment()
        let service = try environment.startService()
        try environment.waitUntilReady(service)
        let first = try await environment.rancher.createToken(user: "u-bob", groups: ["g://ops"])
        let second = try await environment.rancher.createToken(user: "u-carol")
        #expect(authenticated(try await reviewUntil(service, first, authenticated)))
        #expect(authenticated(try await reviewUntil(service, second, authenticated)))
        // From here on the stand-in writes nothing: Rancher is down. The downstream admin revokes with kubectl.
        let name = String(second.prefix { $0 != ":" })
        let patched = try kubectl(
            ["--kubeconfig", environment.kubeconfig, "patch", "clusterauthtoken", name, "--type", "merge", "-p", #"{"enabled":false}"#])
        #expect(patched.status == 0, "\(patched.stderr)")
        #expect(try await reviewUntil(service, second) { $0.contains("disabled") }.contains("token is disabled"))
        let deleted = try kubectl(["--kubeconfig", environment.kubeconfig, "delete", "clusteruserattribute", "u-bob"])
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(try await reviewUntil(service, first) { $0.contains("user not found") }.contains("user not found"))
        #expect(try service.stop() == 0)
    }

    @Test("API server restart, dropped watches, 410 and 5xx: no wrong answer, and sync resumes")
    func apiServerFaults() async throws {
        let environment = try await Environment()
        let rancher = environment.rancher
        let service = try environment.startService()
        try environment.waitUntilReady(service)
        let bearer = try await rancher.createToken(user: "u-dave")
        #expect(authenticated(try await reviewUntil(service, bearer, authenticated)))

        // Slow: every API call now takes a minute, longer than the review client's timeout, so a review
        // that waited on the API would fail; answers come from the synced records.
        environment.server.responseDelay = .seconds(60)
        environment.server.state.dropAllWatches()
        for _ in 0..<3 { #expect(authenticated(try await post(service.baseURL + "/v1/authenticate", review(bearer)).2)) }
        environment.server.responseDelay = .zero

        // Down: answers keep coming from the last synced records.
        try await environment.server.stop()
        for _ in 0..<5 { #expect(authenticated(try await post(service.baseURL + "/v1/authenticate", review(bearer)).2)) }
        try await environment.server.start()
        let name = String(bearer.prefix { $0 != ":" })
        try await rancher.patch(rancher.tokens + "/\(name)", #"{"enabled":false}"#)
        #expect(try await reviewUntil(service, bearer, within: .seconds(15)) { $0.contains("disabled") }.contains("token is disabled"))

        // Dropped watches resume; history compacted away forces a relist.
        environment.server.state.dropAllWatches()
        environment.server.state.compact()
        try await rancher.patch(rancher.tokens + "/\(name)", #"{"enabled":true}"#)
        #expect(authenticated(try await reviewUntil(service, bearer, within: .seconds(15), authenticated)))

        // 5xx answers while the service re-establishes its watches; the change is made directly in the
        // server's store so that only the service's requests meet the injected failures.
        environment.server.failRequests(count: 6, status: 500)
        environment.server.state.dropAllWatches()
        let tokenType = try #require(environment.server.state.resolve(group: "cluster.cattle.io", version: "v3", plural: "clusterauthtokens"))
        _ = try environment.server.state.delete(tokenType, namespace: "cattle-system", name: name)
        #expect(try await reviewUntil(service, bearer, within: .seconds(15)) { $0.contains("not found") }.contains("token not found"))
        #expect(try service.stop() == 0)
    }

    @Test("Started while the API server is down: 503 (never a refusal) until it comes up")
    func startedWhileDown() async throws {
        let environment = try await Environment()
        let bearer = try await environment.rancher.createToken(user: "u-erin")
        try await environment.server.stop()
        let service = try environment.startService()
        let (status, headers, _) = try await post(service.baseURL + "/v1/authenticate", review(bearer))
        #expect(status == .serviceUnavailable)
        #expect(headers["retry-after"].isEmpty)
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", service.baseURL + "/readyz"]) == "503")
        try await environment.server.start()
        try environment.waitUntilReady(service)
        #expect(authenticated(try await reviewUntil(service, bearer, within: .seconds(15), authenticated)))
        // The watch is reported only once the API has answered it, a moment after the list.
        let watching = "clusterauthtokens: 1 object(s), watching"
        #expect(try await curlUntil([service.baseURL + "/readyz?verbose"]) { $0.contains(watching) }.contains(watching))
        #expect(try service.stop() == 0)
    }

    @Test("A malformed record is skipped and reported; the others keep working")
    func malformedRecord() async throws {
        let environment = try await Environment()
        let rancher = environment.rancher
        let good = try await rancher.createToken(user: "u-frank")
        let bad = try await rancher.createToken(user: "u-frank")
        try await rancher.patch(rancher.tokens + "/\(bad.prefix { $0 != ":" })", #"{"enabled":"yes"}"#)
        let service = try environment.startService()
        try environment.waitUntilReady(service)
        #expect(authenticated(try await reviewUntil(service, good, authenticated)))
        #expect(try await post(service.baseURL + "/v1/authenticate", review(bad)).2.contains("token not found"))
        #expect(service.output.contains("object ignored: it cannot be read"))
        #expect(service.output.contains(#"problem="field enabled: expected Bool""#))
        #expect(try service.stop() == 0)
    }

    @Test(
        "kube-api-test-server as a process: --load, --kubeconfig-out, kubectl get/apply, kube-api-auth serving from it",
        .enabled(if: kubectlPath != nil, "needs kubectl"))
    func testServerExecutable() async throws {
        let scratch = try TemporaryDirectory()
        let kubeconfig = (scratch.path as NSString).appendingPathComponent("kubeconfig")
        let loadDirectory = (scratch.path as NSString).appendingPathComponent("load")
        try FileManager.default.createDirectory(atPath: loadDirectory, withIntermediateDirectories: true)
        for file in ["manifests/crds.yaml", "examples/records/user-u-demo1.yaml", "examples/records/kubeconfig-u-demo15wfb6.yaml"] {
            let source = Binary.repositoryRoot.appendingPathComponent(file)
            try FileManager.default.copyItem(
                atPath: source.path, toPath: (loadDirectory as NSString).appendingPathComponent(source.lastPathComponent))
        }
        let testServerPath = (Binary.built as NSString).deletingLastPathComponent + "/kube-api-test-server"
        let apiServer = ChildProcess()
        apiServer.executableURL = URL(fileURLWithPath: testServerPath)
        apiServer.arguments = ["--listen", "127.0.0.1:0", "--kubeconfig-out", kubeconfig, "--load", loadDirectory]
        let output = Pipe()
        apiServer.standardOutput = .pipe(output)
        try apiServer.run()
        defer { apiServer.terminate() }
        // It prints its address once listening (after writing the kubeconfig).
        let line = PipeIO.readLine(output.fileHandleForReading)
        #expect(line.hasPrefix("listening on https://127.0.0.1:"))

        let get = try kubectl(["--kubeconfig", kubeconfig, "get", "clusterauthtokens", "-o", "name"])
        #expect(get.stdout == "clusterauthtoken.cluster.cattle.io/kubeconfig-u-demo15wfb6\n", "\(get.stderr)")
        let apply = try kubectl(
            ["--kubeconfig", kubeconfig, "apply", "-f", Binary.repositoryRoot.appendingPathComponent("examples/records/refused-examples.yaml").path])
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(apply.stdout.contains("clusterauthtoken.cluster.cattle.io/kubeconfig-u-demo1disab created"))

        let service = try ServiceProcess(global: ["--kubeconfig", kubeconfig], serve: [])
        try service.waitForLog(containing: "msg=\"records synced from the API; answering reviews\"")
        #expect(authenticated(try await reviewUntil(service, demoToken, authenticated)))
        #expect(
            try await post(service.baseURL + "/v1/authenticate", review("kubeconfig-u-demo1disab:disabled-demo-secret")).2.contains(
                "token is disabled"))
        #expect(try service.stop() == 0)
    }

    @Test("A cached scrypt verification never outlives a revocation, rotation, user disable or group change")
    func verifiedCacheIsRevocationSafe() async throws {
        let environment = try await Environment()
        let rancher = environment.rancher
        let bearer = try await rancher.createToken(user: "u-kim", groups: ["g://a"], algorithm: "scrypt")
        let name = String(bearer.prefix { $0 != ":" })
        let service = try environment.startService()
        try environment.waitUntilReady(service)
        #expect(authenticated(try await reviewUntil(service, bearer, authenticated)))
        // Cached: the next reviews do not hash (~100 ms each otherwise).
        for _ in 0..<5 { #expect(authenticated(try await post(service.baseURL + "/v1/authenticate", review(bearer)).2)) }
        let metrics = try curl([service.baseURL + "/metrics"])
        #expect(metrics.contains(#"kube_api_auth_hash_verify_duration_seconds_count{algorithm="scrypt"} 1"#))
        #expect(metric(metrics, #"kube_api_auth_verified_cache_requests_total{result="hit"}"#) ?? 0 >= 5)

        try await rancher.ensureUser("u-kim", groups: ["g://a", "g://b"])
        #expect(try await reviewUntil(service, bearer) { $0.contains("g://b") }.contains(#""groups":["g://a","g://b"]"#))

        try await rancher.patch(rancher.users + "/u-kim", #"{"enabled":false}"#)
        #expect(try await reviewUntil(service, bearer) { $0.contains("user is disabled") }.contains("user is disabled"))
        try await rancher.patch(rancher.users + "/u-kim", #"{"enabled":true}"#)
        #expect(authenticated(try await reviewUntil(service, bearer, authenticated)))

        let rotated = try await rancher.rotateSecret(bearer)
        #expect(
            try await reviewUntil(service, bearer, within: .seconds(15)) { $0.contains("does not match") }.contains("token secret does not match"))
        #expect(authenticated(try await reviewUntil(service, rotated, within: .seconds(15), authenticated)))

        try await rancher.patch(rancher.tokens + "/\(name)", #"{"enabled":false}"#)
        #expect(try await reviewUntil(service, rotated) { $0.contains("disabled") }.contains("token is disabled"))
        #expect(try service.stop() == 0)
    }

    @Test("No lock-out by name: after 1,000 wrong secrets (SHA3) or 12 (scrypt) for a never-verified token, its owner's secret is accepted")
    func noLockOutByName() async throws {
        let environment = try await Environment()
        let fast = try await environment.rancher.createToken(user: "u-lee")
        let slow = try await environment.rancher.createToken(user: "u-lee", algorithm: "scrypt")
        let service = try environment.startService(["--max-failures", "3", "--failure-window", "60"])
        try environment.waitUntilReady(service)
        let url = service.baseURL + "/v1/authenticate"
        for (bearer, wrong) in [(fast, 1000), (slow, 12)] {
            let name = String(bearer.prefix { $0 != ":" })
            for attempt in 0..<wrong {
                let answer = try await post(url, review("\(name):guess-\(attempt)")).2
                #expect(answer.contains("token secret does not match"), "\(answer)")
            }
            #expect(authenticated(try await post(url, review(bearer)).2), "the owner of \(name) is locked out")
        }
        try service.waitForLog(containing: "guessing=true")
        #expect(try service.stop() == 0)
        #expect(!service.output.contains("guess-"))
    }

    @Test(
        "Configured as the Go service's newer releases are: no arguments, CATTLE_LISTEN, CATTLE_NAMESPACE, CATTLE_DEBUG and KUBECONFIG; a flag wins over its variable"
    )
    func environmentConfiguration() async throws {
        let environment = try await Environment()
        let bearer = try await environment.rancher.createToken(user: "u-env")
        let port = try freeLoopbackPort()
        let variables = [
            "KUBECONFIG": environment.kubeconfig, "CATTLE_LISTEN": "127.0.0.1:\(port)", "CATTLE_DEBUG": "true", "CATTLE_NAMESPACE": "elsewhere",
        ]
        // Nothing on the command line: it serves, configured by the environment alone.
        let bare = try ServiceProcess(global: [], command: nil, serve: [], listen: [], environment: variables)
        #expect(bare.address == "127.0.0.1:\(port)")
        try environment.waitUntilReady(bare)
        #expect(bare.output.contains("level=debug"))
        // The records of CATTLE_NAMESPACE (none there): the cattle-system token is unknown.
        #expect(bare.output.contains("tokens=0"))
        #expect(!authenticated(try await post(bare.baseURL + "/v1/authenticate", review(bearer)).2))
        #expect(try bare.stop() == 0)

        // Flags win: --namespace over CATTLE_NAMESPACE, --listen over CATTLE_LISTEN; "no" is not a
        // Go boolean, so debug stays off.
        let flagged = try ServiceProcess(
            global: ["--namespace", "cattle-system"], command: "serve", serve: [], listen: ["127.0.0.1:0"],
            environment: variables.merging(["CATTLE_DEBUG": "no"]) { _, new in new })
        #expect(flagged.address != "127.0.0.1:\(port)")
        try environment.waitUntilReady(flagged)
        #expect(authenticated(try await reviewUntil(flagged, bearer, authenticated)))
        #expect(!flagged.output.contains("level=debug"))
        #expect(try flagged.stop() == 0)

        // A CATTLE_LISTEN that is not an address is refused by name.
        #expect {
            _ = try ServiceProcess(
                global: [], command: nil, serve: [], listen: [], environment: variables.merging(["CATTLE_LISTEN": "nowhere"]) { _, new in new })
        } throws: { "\($0)".contains("CATTLE_LISTEN") }
    }

    @Test("Restarted while the API server is down: serves from the snapshot file, then reconciles deletions")
    func snapshotFile() async throws {
        let environment = try await Environment()
        let rancher = environment.rancher
        let kept = try await rancher.createToken(user: "u-mia", groups: ["g://m"])
        let removed = try await rancher.createToken(user: "u-mia", groups: ["g://m"])
        let snapshot = (environment.scratch.path as NSString).appendingPathComponent("snapshot")
        let first = try environment.startService(["--snapshot-file", snapshot, "--snapshot-interval", "0.1"])
        try environment.waitUntilReady(first)
        try first.waitForLog(containing: "snapshot file written")
        #expect(try first.stop() == 0)

        try await environment.server.stop()
        let second = try environment.startService(["--snapshot-file", snapshot])
        try second.waitForLog(containing: "serving from the snapshot file")
        #expect(try await reviewUntil(second, kept, within: .seconds(10), authenticated).contains(#""groups":["g://m"]"#))
        #expect(authenticated(try await post(second.baseURL + "/v1/authenticate", review(removed)).2))
        #expect(try curl([second.baseURL + "/readyz?verbose"]).contains("serving from the snapshot file written at"))
        #expect(try curl([second.baseURL + "/readyz"]).contains("serving from the snapshot file"))

        // Deleted while this replica could not see it; the first list after the API returns applies it.
        let tokenType = try #require(environment.server.state.resolve(group: "cluster.cattle.io", version: "v3", plural: "clusterauthtokens"))
        _ = try environment.server.state.delete(tokenType, namespace: "cattle-system", name: String(removed.prefix { $0 != ":" }))
        try await environment.server.start()
        #expect(try await reviewUntil(second, removed, within: .seconds(15)) { $0.contains("not found") }.contains("token not found"))
        #expect(authenticated(try await post(second.baseURL + "/v1/authenticate", review(kept)).2))
        #expect(try second.stop() == 0)
    }

    @Test("A corrupt snapshot file is rejected with a clear log line and never used")
    func corruptSnapshotFile() async throws {
        let environment = try await Environment()
        let bearer = try await environment.rancher.createToken(user: "u-noah")
        let snapshot = (environment.scratch.path as NSString).appendingPathComponent("snapshot")
        try "kube-api-auth-snapshot 1\nsha256 0000\n{}".write(toFile: snapshot, atomically: true, encoding: .utf8)
        try await environment.server.stop()
        let service = try environment.startService(["--snapshot-file", snapshot])
        try service.waitForLog(containing: "snapshot file rejected and not used")
        #expect(service.output.contains("checksum mismatch"))
        #expect(try await post(service.baseURL + "/v1/authenticate", review(bearer)).0 == .serviceUnavailable)
        #expect(try service.stop() == 0)
    }

    @Test("Shutdown with pending lastUsedAt writes and the API down does not hang")
    func boundedShutdown() async throws {
        let environment = try await Environment()
        var bearers: [String] = []
        for index in 0..<10 { bearers.append(try await environment.rancher.createToken(user: "u-quit\(index)")) }
        let service = try ServiceProcess(
            global: ["--kubeconfig", environment.kubeconfig], serve: ["--last-used-interval", "3600"])
        try environment.waitUntilReady(service)
        for bearer in bearers { #expect(authenticated(try await reviewUntil(service, bearer, authenticated))) }
        try await environment.server.stop()
        // Ten pending writes against an unreachable API: one connect timeout, not ten.
        #expect(try service.stop(timeout: 15) == 0)
        #expect(service.output.contains("lastUsedAt not recorded yet: API unreachable"))
    }

    @Test("A lastUsedAt that could not be written while the API was unreachable is written once it answers")
    func lastUsedAtKeptWhileUnreachable() async throws {
        let environment = try await Environment()
        let bearer = try await environment.rancher.createToken(user: "u-una")
        let name = String(bearer.prefix { $0 != ":" })
        let service = try environment.startService()
        try environment.waitUntilReady(service)
        try await environment.server.stop()
        let mark = service.logMark
        #expect(authenticated(try await post(service.baseURL + "/v1/authenticate", review(bearer)).2))
        try service.waitForLog(containing: "kept for the next round", since: mark)
        try await environment.server.start()
        let lastUsed = try await repeatUntil(
            within: .seconds(20),
            {
                try await environment.rancher.call(.GET, environment.rancher.tokens + "/\(name)")["lastUsedAt"]?.stringValue ?? ""
            }
        ) { !$0.isEmpty }
        #expect(!lastUsed.isEmpty, "lastUsedAt was dropped instead of written when the API came back")
        #expect(try service.stop() == 0)
    }

    @Test("With the refresh ConfigMap at 0 and a user refreshed in the past, the service sets needsRefresh")
    func needsRefresh() async throws {
        let environment = try await Environment()
        let rancher = environment.rancher
        try await rancher.call(
            .POST, "/api/v1/namespaces/cattle-system/configmaps",
            #"{"metadata":{"name":"auth-provider-refresh-debounce-seconds"},"data":{"value":"0"}}"#)
        let bearer = try await rancher.createToken(user: "u-ivan")
        try await rancher.patch(rancher.users + "/u-ivan", #"{"lastRefresh":"2026-01-01T00:00:00Z"}"#)
        let service = try environment.startService()
        try environment.waitUntilReady(service)
        #expect(authenticated(try await reviewUntil(service, bearer) { $0.contains("u-ivan") }))
        try service.waitForLog(containing: "asked Rancher to refresh a user's groups")
        let user = try await rancher.call(.GET, rancher.users + "/u-ivan")
        #expect(user["needsRefresh"] == .bool(true))
        #expect(try service.stop() == 0)
    }

    @Test("Two replicas under concurrent reviews: no refused valid review, lastUsedAt advances, legacy hash migrated once")
    func twoReplicas() async throws {
        let environment = try await Environment()
        let rancher = environment.rancher
        let modern = try await rancher.createToken(user: "u-gina", groups: ["g://1"])
        let legacy = try await rancher.createToken(user: "u-hank", legacy: true)
        let replicas = [try environment.startService(), try environment.startService()]
        for replica in replicas { try environment.waitUntilReady(replica) }
        var refusals: [String] = []
        try await withThrowingTaskGroup(of: [String].self) { group in
            for replica in replicas {
                for token in [modern, legacy] {
                    group.addTask {
                        var answers: [String] = []
                        for _ in 0..<40 {
                            let answer = try await post(replica.baseURL + "/v1/authenticate", review(token)).2
                            if !authenticated(answer) { answers.append(answer) }
                        }
                        return answers
                    }
                }
            }
            for try await answers in group { refusals += answers }
        }
        #expect(refusals.isEmpty, "\(refusals)")
        // The legacy hash ends up in a Secret and the field is cleared, once.
        let legacyName = String(legacy.prefix { $0 != ":" })
        let modernName = String(modern.prefix { $0 != ":" })
        let migrated = try await repeatUntil(
            within: .seconds(20), { try await rancher.call(.GET, rancher.tokens + "/\(legacyName)")["hash"]?.stringValue ?? "(none)" }
        ) { $0 == "" }
        #expect(migrated == "", "the legacy token's hash field was not cleared within 20 s")
        let secret = try await rancher.call(.GET, rancher.secrets + "/\(legacyName)")
        #expect(secret["data"]?["hash"]?.stringValue != nil)
        // The replica logs the migration after its patch is answered: wait for the line, then count.
        let migrations = try await repeatUntil(
            within: .seconds(20), { "\(replicas.map { $0.output.components(separatedBy: "migrated legacy token hash").count - 1 }.reduce(0, +))" }
        ) { $0 != "0" }
        #expect(migrations == "1")
        #expect(authenticated(try await post(replicas[1].baseURL + "/v1/authenticate", review(legacy)).2))
        // lastUsedAt was written for the modern token.
        let lastUsed = try await repeatUntil(
            within: .seconds(20), { try await rancher.call(.GET, rancher.tokens + "/\(modernName)")["lastUsedAt"]?.stringValue ?? "" }
        ) { !$0.isEmpty }
        #expect(!lastUsed.isEmpty, "lastUsedAt was not written within 20 s")
        for replica in replicas { #expect(try replica.stop() == 0) }
    }
}
