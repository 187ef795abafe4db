import Foundation
import KubeAPITestServer
import NIOCore
import NIOHTTP1
import Testing
import TestSupport

/// `kube-api-auth proxy` in front of the in-repo API server, for what the real apiserver cannot be
/// made to do on demand: pod exec (WebSocket), a raw upgraded protocol, failures, restarts and
/// dropped watches, and a record of exactly which headers arrived upstream.
final class ProxyEnvironment: @unchecked Sendable {
    let server: KubeAPITestServer
    let rancher: RancherStandIn
    let scratch: TemporaryDirectory
    let identity: SelfSignedIdentity
    let caPath: String
    let upstreamToken: String
    private(set) var proxy: ServiceProcess!

    init() async throws {
        server = try KubeAPITestServer(configuration: .init(tls: SelfSignedIdentity()))
        try await server.start()
        upstreamToken = server.configuration.token ?? ""
        rancher = RancherStandIn(server: server)
        try await rancher.installCRDs()
        scratch = try TemporaryDirectory()
        identity = try SelfSignedIdentity(commonName: "kube-api-auth-proxy")
        caPath = scratch.file("proxy.pem")
        try identity.certificatePEM.write(toFile: caPath, atomically: true, encoding: .utf8)
        try identity.privateKeyPEM.write(toFile: scratch.file("proxy.key"), atomically: true, encoding: .utf8)
    }

    /// Starts the proxy with the test server as upstream and waits until it has synced.
    @discardableResult
    func startProxy(_ extra: [String] = []) throws -> ServiceProcess {
        let kubeconfig = try writeKubeconfig(for: server, in: scratch)
        proxy = try ServiceProcess(
            global: ["--debug", "--kubeconfig", kubeconfig], command: "proxy",
            serve: ["--tls-cert-file", caPath, "--tls-private-key-file", scratch.file("proxy.key")] + extra)
        try proxy.waitForLog(containing: "msg=\"records synced from the API; answering reviews\"")
        return proxy
    }

    var port: Int { Int(proxy.address.split(separator: ":").last ?? "") ?? 0 }
    var url: String { "https://\(proxy.address)" }

    func kubectl(_ token: String, _ arguments: [String], input: String = "") throws -> Binary.Result {
        try EndToEndTests.kubectl(
            ["--kubeconfig", "/dev/null", "--server", url, "--certificate-authority", caPath, "--token", token] + arguments, input: input)
    }

    func curl(_ path: String, _ arguments: [String] = []) throws -> String {
        try EndToEndTests.curl(["--cacert", caPath, "-w", "\n%{http_code}"] + arguments + [url + path])
    }

    func connect(alpn: [String] = ["http/1.1"]) async throws -> TLSRawClient {
        try await TLSRawClient(port: port, caPEM: identity.certificatePEM, alpn: alpn)
    }

    /// The request heads the test server received with `marker` in their URI.
    func upstreamRequests(_ marker: String) -> [KubeAPITestServer.SeenRequest] {
        server.seenRequests.filter { $0.uri.contains(marker) }
    }
}

extension KubeAPITestServer.SeenRequest {
    func values(_ name: String) -> [String] { headers.filter { $0.name.lowercased() == name }.map(\.value) }
}

@Suite("kube-api-auth proxy in front of the in-repo API server: exec, upgrades, failures, drain, headers, hostile input", .serialized)
struct ProxyEndToEndTests {
    @Test("Upstream headers: the Rancher token replaced by the proxy's and the user's identity; hop-by-hop and client Impersonate-* dropped; X-Forwarded-For appended; pass-through untouched")
    func upstreamHeaders() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy()
        let alice = try await environment.rancher.createToken(user: "u-alice", groups: ["g://devs"])
        let answer = try environment.curl(
            "/api/v1/namespaces/cattle-system/configmaps?marker=impersonated",
            ["--http1.1", "-H", "Authorization: Bearer \(alice)", "-H", "Connection: keep-alive, X-Hop", "-H", "X-Hop: secret-hop",
             "-H", "X-Forwarded-For: 10.1.2.3", "-H", "Accept: application/json"])
        #expect(answer.hasSuffix("\n200"), "\(answer)")
        let seen = try #require(environment.upstreamRequests("marker=impersonated").last)
        #expect(seen.values("authorization") == ["Bearer \(environment.upstreamToken)"])
        #expect(seen.values("impersonate-user") == ["u-alice"])
        #expect(seen.values("impersonate-group") == ["g://devs"])
        #expect(seen.values("x-hop").isEmpty && seen.values("connection").allSatisfy { !$0.contains("X-Hop") })
        #expect(seen.values("x-forwarded-for") == ["10.1.2.3, 127.0.0.1"])
        #expect(seen.values("accept") == ["application/json"])
        #expect(!seen.headers.contains { $0.value.contains(alice) || $0.value.contains(String(alice.split(separator: ":")[1])) })

        // Pass-through: the client's own token (here one the test server refuses), no proxy credential.
        let other = try environment.curl("/api?marker=passthrough", ["-H", "Authorization: Bearer some-other-token", "-H", "Impersonate-User: bob"])
        #expect(other.hasSuffix("\n401"), "\(other)")
        let passed = try #require(environment.upstreamRequests("marker=passthrough").last)
        #expect(passed.values("authorization") == ["Bearer some-other-token"])
        #expect(passed.values("impersonate-user") == ["bob"])
        #expect(!passed.headers.contains { $0.value.contains(environment.upstreamToken) })
        #expect(try environment.proxy.stop() == 0)
    }

    @Test("kubectl exec -i through the proxy: stdin round-trips to stdout, stderr arrives, the exit code is kubectl's")
    func exec() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy()
        let alice = try await environment.rancher.createToken(user: "u-alice", groups: ["g://devs"])
        let pod = #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"shell","namespace":"team"},"spec":{"containers":[{"name":"main","image":"busybox"}]},"status":{"phase":"Running"}}"#
        _ = try environment.server.state.create(.pods, namespace: "team", object: try JSONValue.parse(Data(pod.utf8)))
        let input = (1...200).map { "line \($0) of the standard input\n" }.joined()
        let succeeded = try environment.kubectl(alice, ["exec", "-i", "shell", "-n", "team", "--", "cat"], input: input)
        #expect(succeeded.status == 0, "\(succeeded.stderr)")
        #expect(succeeded.stdout == input)
        #expect(succeeded.stderr.contains("exec: cat"))
        let failed = try environment.kubectl(alice, ["exec", "-i", "shell", "-n", "team", "--", "cat", "exit=3"], input: "bye\n")
        #expect(failed.status == 3, "\(failed.stderr)")
        #expect(failed.stdout == "bye\n")
        let upgrade = try #require(environment.upstreamRequests("/pods/shell/exec").last)
        #expect(upgrade.values("impersonate-user") == ["u-alice"])
        #expect(upgrade.values("authorization") == ["Bearer \(environment.upstreamToken)"])
        #expect(upgrade.values("upgrade").map { $0.lowercased() } == ["websocket"])
        #expect(try environment.proxy.stop() == 0)
    }

    @Test("A raw Upgrade stays spliced for 60 s of traffic, longer than every timeout of the proxy")
    func rawUpgradeSplice() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy(["--header-timeout", "5", "--read-timeout", "5", "--idle-timeout", "5"])
        let alice = try await environment.rancher.createToken(user: "u-alice")
        let client = try await environment.connect()
        try await client.send(
            "GET /echo HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer \(alice)\r\nConnection: Upgrade\r\nUpgrade: kube-api-auth-echo\r\n\r\n")
        let head = try await client.read(until: "\r\n\r\n")
        #expect(head.hasPrefix("HTTP/1.1 101"), "\(head)")
        let start = ContinuousClock.now
        var next = start
        var echoed = 0
        // Paced traffic (not a wait for an event): one message every 100 ms for 60 s, each echoed.
        for index in 0..<600 {
            let message = "message \(index) " + String(repeating: "x", count: index % 50) + "\n"
            try await client.send(message)
            let back = try await client.read(until: "\n", timeout: .seconds(10))
            if back == message { echoed += 1 } else { break }
            next += .milliseconds(100)
            try await Task.sleep(until: next)
        }
        #expect(echoed == 600, "the splice ended after \(echoed) messages (\(ContinuousClock.now - start))")
        await client.close()
        #expect(try environment.proxy.stop() == 0)
    }

    @Test("Upstream 5xx, a restart and dropped watches reach the client as the upstream sent them")
    func upstreamFailures() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy()
        let alice = try await environment.rancher.createToken(user: "u-alice")
        let bearer = ["-H", "Authorization: Bearer \(alice)"]
        environment.server.failRequests(count: 1, status: 500)
        let failed = try environment.curl("/api/v1/namespaces/cattle-system/configmaps", bearer)
        #expect(failed.hasSuffix("\n500") && failed.contains("injected failure"), "\(failed)")

        // A watch the upstream drops ends for the client too, after the events it had sent.
        let watchLog = environment.scratch.file("watch.log")
        let watcher = try BackgroundProcess(
            name: "curl watch", executable: "/usr/bin/curl",
            arguments: ["-s", "-N", "--http1.1", "--cacert", environment.caPath] + bearer
                + [environment.url + "/api/v1/namespaces/cattle-system/configmaps?watch=1", "-w", "\nexit-marker %{http_code}\n"],
            logPath: watchLog)
        _ = try await environment.rancher.call(.POST, "/api/v1/namespaces/cattle-system/configmaps", #"{"metadata":{"name":"before-drop"}}"#)
        let before = try await repeatUntil(within: .seconds(20), { watcher.log }) { $0.contains("before-drop") }
        #expect(before.contains(#""type":"ADDED""#))
        environment.server.state.dropAllWatches()
        let ended = try await repeatUntil(within: .seconds(20), { watcher.isRunning ? "" : watcher.log }) { $0.contains("exit-marker") }
        #expect(ended.contains("exit-marker 200"), "\(ended)")

        // The upstream down: 502 with a Status; back on the same port: answers again.
        try await environment.server.stop()
        let down = try environment.curl("/api/v1/namespaces/cattle-system/configmaps", bearer)
        #expect(down.hasSuffix("\n502") && down.contains(#""kind":"Status""#), "\(down)")
        try await environment.server.start()
        let back = try await repeatUntil(within: .seconds(20), { try environment.curl("/api/v1/namespaces/cattle-system/configmaps", bearer) }) {
            $0.hasSuffix("\n200")
        }
        #expect(back.hasSuffix("\n200"), "\(back)")
        #expect(try environment.proxy.stop() == 0)
    }

    @Test("Shutdown: open watches are closed at the drain timeout and the proxy exits 0")
    func drainClosesStreams() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy(["--drain-timeout", "2"])
        let alice = try await environment.rancher.createToken(user: "u-alice")
        var watchers: [BackgroundProcess] = []
        for (index, protocolFlag) in ["--http1.1", "--http2"].enumerated() {
            let watcher = try BackgroundProcess(
                name: "curl watch", executable: "/usr/bin/curl",
                arguments: ["-s", "-N", protocolFlag, "--cacert", environment.caPath, "-H", "Authorization: Bearer \(alice)",
                            environment.url + "/api/v1/namespaces/cattle-system/configmaps?watch=1", "-w", "\nexit-marker\n"],
                logPath: environment.scratch.file("watch-\(index).log"))
            watchers.append(watcher)
        }
        _ = try await environment.rancher.call(.POST, "/api/v1/namespaces/cattle-system/configmaps", #"{"metadata":{"name":"seen"}}"#)
        for watcher in watchers {
            let seen = try await repeatUntil(within: .seconds(20), { watcher.log }) { $0.contains("seen") }
            #expect(seen.contains("seen"))
        }
        let stopped = ContinuousClock.now
        #expect(try environment.proxy.stop() == 0)
        #expect(environment.proxy.output.contains("drain timeout reached; closing remaining connections"))
        for watcher in watchers {
            let ended = try await repeatUntil(within: .seconds(20), { watcher.isRunning ? "" : watcher.log }) { $0.contains("exit-marker") }
            #expect(ended.contains("exit-marker"))
        }
        print("proxy stopped and closed its watches \(ContinuousClock.now - stopped) after SIGTERM (drain timeout 2 s)")
    }
}
