import Foundation

#if canImport(Glibc)
import Glibc
#endif
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
    func startProxy(_ extra: [String] = [], image: String? = nil) throws -> ServiceProcess {
        let kubeconfig = try writeKubeconfig(for: server, in: scratch)
        proxy = try ServiceProcess(
            global: ["--debug", "--kubeconfig", kubeconfig], command: "proxy",
            serve: ["--tls-cert-file", caPath, "--tls-private-key-file", scratch.file("proxy.key")] + extra, image: image)
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

    /// Runs `body` with a TLS connection to the proxy (closed when it returns).
    func withConnection<Result: Sendable>(alpn: [String] = ["http/1.1"], _ body: (TLSRawClient) async throws -> Result) async throws -> Result {
        try await TLSRawClient.withConnection(port: port, caPEM: identity.certificatePEM, alpn: alpn, body)
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
    @Test(
        "Upstream headers: the Rancher token replaced by the proxy's and the user's identity; hop-by-hop and client Impersonate-* dropped; X-Forwarded-For appended; pass-through untouched"
    )
    func upstreamHeaders() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy(["--metrics-listen", "127.0.0.1:0"])
        let alice = try await environment.rancher.createToken(user: "u-alice", groups: ["g://devs"])
        let answer = try environment.curl(
            "/api/v1/namespaces/cattle-system/configmaps?marker=impersonated",
            [
                "--http1.1", "-H", "Authorization: Bearer \(alice)", "-H", "Connection: keep-alive, X-Hop", "-H", "X-Hop: secret-hop",
                "-H", "X-Forwarded-For: 10.1.2.3", "-H", "Accept: application/json",
            ])
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

        // One audit line per request, and the proxy's metrics on the health listener.
        let log = environment.proxy.output
        #expect(
            log.contains("msg=proxied") && log.contains("path=/api/v1/namespaces/cattle-system/configmaps") && log.contains("route=impersonated")
                && log.contains("status=200") && log.contains("user=u-alice") && log.contains("verb=GET") && log.contains("proto=http/1.1"))
        #expect(!log.contains("marker=impersonated"), "query strings stay out of the audit line")
        // One audit vocabulary: the decision's line and the request's line tell the same client
        // (`source=ip:port`) and both measure in `duration_ms`.
        func field(_ line: Substring?, _ name: String) -> String? {
            guard let line, let range = line.range(of: " \(name)=") else { return nil }
            return String(line[range.upperBound...].prefix { $0 != " " })
        }
        let lines = log.split(separator: "\n")
        let reviewLine = lines.first { $0.contains("msg=review") && $0.contains("user=u-alice") }
        let proxiedLine = lines.first { $0.contains("msg=proxied") && $0.contains("user=u-alice") }
        #expect(field(reviewLine, "source") == field(proxiedLine, "source"), "\(String(describing: reviewLine)) / \(String(describing: proxiedLine))")
        #expect(field(proxiedLine, "source")?.hasPrefix("127.0.0.1:") == true)
        #expect(Double(field(reviewLine, "duration_ms") ?? "") != nil && Double(field(proxiedLine, "duration_ms") ?? "") != nil)
        let health = try #require(log.split(separator: "\n").first { $0.contains("purpose=\"health and metrics\"") })
        let metrics = try curl(["http://" + String(health.split(separator: "address=").last?.prefix { $0 != " " } ?? "") + "/metrics"])
        #expect(metrics.contains(#"kube_api_auth_proxy_requests_total{route="impersonated",code="2xx"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"kube_api_auth_proxy_requests_total{route="pass_through",code="4xx"} 1"#))
        #expect(metrics.contains("kube_api_auth_proxy_upstream_duration_seconds_count 2"))
        #expect(try environment.proxy.stop() == 0)
    }

    @Test("No lock-out by name through the proxy: 1,000 wrong secrets for a never-verified token, then its owner's secret gets 200")
    func noLockOutByName() async throws {
        let environment = try await ProxyEnvironment()
        let bearer = try await environment.rancher.createToken(user: "u-kim", groups: ["g://k"])
        try environment.startProxy()
        let name = String(bearer.prefix { $0 != ":" })
        // One connection per request: the proxy closes an HTTP/1.1 connection after an answer of its own.
        func get(_ token: String, marker: String) async throws -> String {
            let head = try await environment.withConnection { client in
                try await client.send("GET /api?marker=\(marker) HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer \(token)\r\n\r\n")
                return try await client.read(until: "\r\n\r\n")
            }
            // "\r\n" is one Character in Swift: split on the string.
            return head.components(separatedBy: "\r\n").first ?? ""
        }
        for attempt in 0..<1000 {
            let status = try await get("\(name):guess-\(attempt)", marker: "guess")
            guard status == "HTTP/1.1 401 Unauthorized" else {
                Issue.record("wrong secret \(attempt): \(status)")
                break
            }
        }
        #expect(try await get(bearer, marker: "owner") == "HTTP/1.1 200 OK")
        #expect(environment.upstreamRequests("marker=guess").isEmpty)
        try environment.proxy.waitForLog(containing: "guessing=true")
        #expect(try environment.proxy.stop() == 0)
    }

    @Test("Start-up refusals name the flag or file: no TLS, a client-certificate upstream credential, insecure-skip-tls-verify, no token")
    func startupRefusals() async throws {
        let environment = try await ProxyEnvironment()
        let noTLS = try Binary.run(["proxy", "--records-dir", examplesDirectory])
        #expect(noTLS.status != 0 && noTLS.stderr.contains("--tls-cert-file") && noTLS.stderr.contains("TLS only"), "\(noTLS.stderr)")
        let tls = ["--tls-cert-file", environment.caPath, "--tls-private-key-file", environment.scratch.file("proxy.key")]
        let upstream = environment.server.url
        let cases: [(user: String, cluster: String, expected: String)] = [
            (
                "client-certificate-data: \(Data("x".utf8).base64EncodedString())\n    client-key-data: \(Data("y".utf8).base64EncodedString())",
                "certificate-authority: \(environment.caPath)", "client certificate"
            ),
            ("token: t", "insecure-skip-tls-verify: true", "insecure-skip-tls-verify"),
            ("{}", "certificate-authority: \(environment.caPath)", "needs a bearer token"),
        ]
        for (index, item) in cases.enumerated() {
            let kubeconfig = environment.scratch.file("upstream-\(index).kubeconfig")
            try """
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster:
                server: \(upstream)
                \(item.cluster)
            users:
            - name: u
              user:
                \(item.user)
            contexts:
            - name: c
              context: {cluster: c, user: u}
            current-context: c

            """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
            let result = try Binary.run(["--kubeconfig", kubeconfig, "proxy", "--records-dir", examplesDirectory, "--listen", "127.0.0.1:0"] + tls)
            #expect(result.status != 0, "\(item.expected): \(result.stderr)")
            #expect(result.stderr.contains(item.expected) && result.stderr.contains(kubeconfig), "\(result.stderr)")
        }
    }

    @Test("The serving certificate is reloaded when its files rotate, still offering HTTP/2")
    func certificateReload() async throws {
        let environment = try await ProxyEnvironment()
        let first = try TestCertificates()
        let second = try TestCertificates()
        let certificate = environment.scratch.file("tls.crt")
        let key = environment.scratch.file("tls.key")
        try first.installServerIdentity(certificate: certificate, key: key)
        let kubeconfig = try writeKubeconfig(for: environment.server, in: environment.scratch)
        let proxy = try ServiceProcess(
            global: ["--kubeconfig", kubeconfig], command: "proxy",
            serve: [
                "--records-dir", examplesDirectory, "--tls-cert-file", certificate, "--tls-private-key-file", key, "--tls-reload-interval", "0.1",
            ])
        let url = "https://\(proxy.address)/version"
        func handshake(_ ca: String) throws -> String {
            try runProcess("/usr/bin/curl", ["-s", "-m", "10", "--http2", "-o", "/dev/null", "-w", "%{http_version}", "--cacert", ca, url]).stdout
        }
        #expect(try handshake(first.path("ca.pem")) == "2")
        try second.installServerIdentity(certificate: certificate, key: key)
        try proxy.waitForLog(containing: "TLS certificate reloaded")
        #expect(try handshake(second.path("ca.pem")) == "2")
        #expect(try handshake(first.path("ca.pem")) == "0")
        #expect(try proxy.stop() == 0)
    }

    @Test(
        "Records not synced yet: a Rancher token is answered 503 with a Status, never forwarded; an upstream whose certificate does not verify: 502")
    func cannotTellAndUnverifiedUpstream() async throws {
        let environment = try await ProxyEnvironment()
        try await environment.server.stop()
        let kubeconfig = try writeKubeconfig(for: environment.server, in: environment.scratch)
        let proxy = try ServiceProcess(
            global: ["--kubeconfig", kubeconfig], command: "proxy",
            serve: ["--tls-cert-file", environment.caPath, "--tls-private-key-file", environment.scratch.file("proxy.key")])
        let url = "https://\(proxy.address)"
        let waiting = try curl(["--cacert", environment.caPath, "-w", "\n%{http_code}", "-H", "Authorization: Bearer \(demoToken)", url + "/api"])
        #expect(waiting.hasSuffix("\n503") && waiting.contains(#""kind":"Status""#) && waiting.contains("records are not loaded yet"), "\(waiting)")
        #expect(try proxy.stop() == 0)

        // The same upstream, trusted through a CA that did not sign its certificate.
        try await environment.server.start()
        let wrongCA = environment.scratch.file("wrong-ca.kubeconfig")
        let other = try SelfSignedIdentity(commonName: "someone-else")
        try environment.server.kubeconfig()
            .replacingOccurrences(
                of: Data((environment.server.configuration.tls?.certificatePEM ?? "").utf8).base64EncodedString(),
                with: Data(other.certificatePEM.utf8).base64EncodedString()
            )
            .write(toFile: wrongCA, atomically: true, encoding: .utf8)
        let unverified = try ServiceProcess(
            global: ["--kubeconfig", wrongCA], command: "proxy",
            serve: [
                "--records-dir", examplesDirectory, "--tls-cert-file", environment.caPath, "--tls-private-key-file",
                environment.scratch.file("proxy.key"),
            ])
        let answer = try curl([
            "--cacert", environment.caPath, "-w", "\n%{http_code}", "-H", "Authorization: Bearer \(demoToken)",
            "https://\(unverified.address)/api?unverified",
        ])
        #expect(answer.hasSuffix("\n502") && answer.contains(#""kind":"Status""#), "\(answer)")
        #expect(environment.upstreamRequests("unverified").isEmpty)
        #expect(try unverified.stop() == 0)
    }

    @Test("Pipelined HTTP/1.1 requests (with bodies) are answered in order on one connection")
    func pipelining() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy()
        let alice = try await environment.rancher.createToken(user: "u-alice")
        try await environment.withConnection { client in
            var batch = ""
            for index in 0..<3 {
                let body = #"{"metadata":{"name":"piped-\#(index)"}}"#
                batch +=
                    "POST /api/v1/namespaces/team/configmaps?pipelined-\(index) HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer \(alice)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                batch +=
                    "GET /api/v1/namespaces/team/configmaps/piped-\(index)?pipelined-get-\(index) HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer \(alice)\r\n\r\n"
            }
            try await client.send(batch)
            for index in 0..<3 {
                for expected in ["HTTP/1.1 201", "HTTP/1.1 200"] {
                    let head = try await client.read(until: "\r\n\r\n")
                    #expect(head.hasPrefix(expected), "request \(index): \(head)")
                    let length =
                        Int(
                            head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }?
                                .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
                    let body = String(decoding: try await client.read(count: length), as: UTF8.self)
                    #expect(body.contains("piped-\(index)"), "\(body)")
                }
            }
        }
        #expect(environment.upstreamRequests("pipelined").count == 6)
        #expect(try environment.proxy.stop() == 0)
    }

    @Test("kubectl exec -i through the proxy: stdin round-trips to stdout, stderr arrives, the exit code is kubectl's")
    func exec() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy()
        let alice = try await environment.rancher.createToken(user: "u-alice", groups: ["g://devs"])
        let pod =
            #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"shell","namespace":"team"},"spec":{"containers":[{"name":"main","image":"busybox"}]},"status":{"phase":"Running"}}"#
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

    @Test("Backpressure: a 40 MiB answer to a client that reads slowly is not buffered in the proxy")
    func slowReaderBackpressure() async throws {
        let environment = try await ProxyEnvironment()
        let proxy = try environment.startProxy()
        let alice = try await environment.rancher.createToken(user: "u-alice")
        let megabyte = String(repeating: "x", count: 1 << 20)
        for index in 0..<40 {
            let object = JSONValue.object(["metadata": .object(["name": .string("big-\(index)")]), "data": .object(["a": .string(megabyte)])])
            _ = try environment.server.state.create(.configMaps, namespace: "big", object: object)
        }
        func memory(_ field: String) throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(proxy.process.processIdentifier)/status", encoding: .utf8)
            let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") } ?? ""
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
        }
        let written = environment.server.answersWritten
        let baseline = try memory("VmHWM")
        try await environment.withConnection { client in
            try await client.send("GET /api/v1/namespaces/big/configmaps HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer \(alice)\r\n\r\n")
            let head = try await client.read(until: "\r\n\r\n", timeout: .seconds(30))
            #expect(head.hasPrefix("HTTP/1.1 200"), "\(head)")
            // The client reads nothing more: the upstream must not be able to finish sending (the
            // proxy stops reading from it), which is a wait for something that must not happen.
            let finished = try await repeatUntil(within: .seconds(5), { "\(environment.server.answersWritten > written)" }) { $0 == "true" }
            #expect(finished == "false", "the upstream finished sending 40 MiB to the proxy while the client read nothing")
            var received = 0
            while !client.closed, received < 40 << 20 {
                let chunk = try await client.read(count: 1 << 20, timeout: .seconds(30))
                if chunk.isEmpty { break }
                received += chunk.count
            }
            #expect(received >= 40 << 20, "only \(received) bytes arrived")
            let peak = try memory("VmHWM")
            #expect(peak - baseline < 16, "the proxy's peak RSS grew from \(baseline) to \(peak) MiB")
            print("slow reader: proxy peak RSS \(baseline) MiB before, \(peak) MiB after relaying 40 MiB")
        }
        #expect(try proxy.stop() == 0)
    }

    @Test("A raw Upgrade is spliced after the upstream's 101: messages echo through the proxy both ways")
    func rawUpgradeSplice() async throws {
        // That the splice outlasts every timeout is pinned in virtual time (RawRelayTests: ten
        // minutes past 5 s timeouts); this checks the real binary splices a raw protocol at all.
        let environment = try await ProxyEnvironment()
        try environment.startProxy(["--header-timeout", "5", "--read-timeout", "5", "--idle-timeout", "5"])
        let alice = try await environment.rancher.createToken(user: "u-alice")
        try await environment.withConnection { client in
            try await client.send(
                "GET /echo HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer \(alice)\r\nConnection: Upgrade\r\nUpgrade: kube-api-auth-echo\r\n\r\n")
            let head = try await client.read(until: "\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.1 101"), "\(head)")
            var echoed = 0
            for index in 0..<50 {
                let message = "message \(index) " + String(repeating: "x", count: index % 50) + "\n"
                try await client.send(message)
                let back = try await client.read(until: "\n", timeout: .seconds(10))
                if back == message { echoed += 1 } else { break }
            }
            #expect(echoed == 50, "the splice ended after \(echoed) messages")
        }
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

        // An upgrade the upstream declines (SPDY to a path without one) is answered as sent; the
        // upstream connection is not reused (the server stopped parsing HTTP on it), so the
        // requests after it are answered too.
        for _ in 0..<8 {
            let declined = try environment.curl("/version", ["--http1.1", "-H", "Connection: Upgrade", "-H", "Upgrade: SPDY/3.1"] + bearer)
            #expect(declined.hasSuffix("\n200") && declined.contains("gitVersion"), "\(declined)")
            let next = try environment.curl("/version", ["--http1.1"] + bearer)
            #expect(next.hasSuffix("\n200"), "\(next)")
        }

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
                arguments: [
                    "-s", "-N", protocolFlag, "--cacert", environment.caPath, "-H", "Authorization: Bearer \(alice)",
                    environment.url + "/api/v1/namespaces/cattle-system/configmaps?watch=1", "-w", "\nexit-marker\n",
                ],
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

    @Test("Shutdown: an HTTP/2 client with an open watch gets GOAWAY, and the proxy exits 0")
    func goAwayOnDrain() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy(["--drain-timeout", "2"])
        let alice = try await environment.rancher.createToken(user: "u-alice")
        try await environment.withConnection(alpn: ["h2"]) { client in
            let headers = [
                (":method", "GET"), (":scheme", "https"), (":path", "/api/v1/namespaces/cattle-system/configmaps?watch=1"),
                (":authority", "proxy"), ("authorization", "Bearer \(alice)"),
            ].flatMap(RawHTTP2.literal)
            // END_HEADERS | END_STREAM on stream 1, after the preface and empty SETTINGS.
            try await client.send(
                RawHTTP2.preface + RawHTTP2.frame(type: RawHTTP2.settingsType, flags: 0, stream: 0, payload: [])
                    + RawHTTP2.frame(type: RawHTTP2.headersType, flags: 0x5, stream: 1, payload: headers))
            _ = try await environment.rancher.call(.POST, "/api/v1/namespaces/cattle-system/configmaps", #"{"metadata":{"name":"h2-seen"}}"#)
            let before = try await client.read(until: Array("h2-seen".utf8))
            #expect(before.count > 9, "the watch event arrived on stream 1")
            #expect(try environment.proxy.stop() == 0)
            let frames = RawHTTP2.frames(before + (try await client.readBytesToEnd()))
            #expect(frames.contains { $0.type == RawHTTP2.goAwayType && $0.stream == 0 }, "no GOAWAY among \(frames.map(\.type))")
        }
    }

    @Test(
        "HTTP/2 without an open stream: GOAWAY, then closed (no stream opened, idle after a watch, after a connection error); an open watch outlives the idle timeout"
    )
    func http2ConnectionsEnd() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy(["--header-timeout", "2", "--idle-timeout", "3"])
        let alice = try await environment.rancher.createToken(user: "u-alice")
        let hello = RawHTTP2.preface + RawHTTP2.frame(type: RawHTTP2.settingsType, flags: 0, stream: 0, payload: [])
        // The client never answers the proxy's PING (a client that is gone): closed anyway.
        try await environment.withConnection(alpn: ["h2"]) { client in
            try await client.send(hello)
            let frames = RawHTTP2.frames(try await client.readBytesToEnd(timeout: .seconds(30)))
            #expect(client.endedBeforeDeadline, "an HTTP/2 connection that opened no stream is still open after 30 s")
            #expect(RawHTTP2.goAwayErrors(frames) == [0], "GOAWAY frames: \(RawHTTP2.goAwayErrors(frames))")
        }
        // A connection error (WINDOW_UPDATE on the connection with an increment of 0): GOAWAY
        // with PROTOCOL_ERROR, and the connection does not stay open.
        try await environment.withConnection(alpn: ["h2"]) { client in
            try await client.send(hello + RawHTTP2.frame(type: RawHTTP2.windowUpdateType, flags: 0, stream: 0, payload: [0, 0, 0, 0]))
            let frames = RawHTTP2.frames(try await client.readBytesToEnd(timeout: .seconds(30)))
            #expect(client.endedBeforeDeadline, "an HTTP/2 connection is still open 30 s after its connection error")
            #expect(RawHTTP2.goAwayErrors(frames).first == 1, "GOAWAY frames: \(RawHTTP2.goAwayErrors(frames))")
        }
        // A watch stream: open past the idle timeout (events still arrive), and the connection
        // ends after the idle timeout once the stream does (the proxy stopping it: the token deleted).
        try await environment.withConnection(alpn: ["h2"]) { client in
            let headers = [
                (":method", "GET"), (":scheme", "https"), (":path", "/api/v1/namespaces/cattle-system/configmaps?watch=1"),
                (":authority", "proxy"), ("authorization", "Bearer \(alice)"),
            ].flatMap(RawHTTP2.literal)
            try await client.send(hello + RawHTTP2.frame(type: RawHTTP2.headersType, flags: 0x5, stream: 1, payload: headers))
            _ = try await environment.rancher.call(.POST, "/api/v1/namespaces/cattle-system/configmaps", #"{"metadata":{"name":"h2-first"}}"#)
            // Everything the proxy sends, kept whole so that its frames can be read afterwards.
            var received = try await client.read(until: Array("h2-first".utf8))
            // Something that must not happen: the connection closing while its watch is open.
            let closed = try await repeatUntil(within: .seconds(8), { "\(client.closed)" }) { $0 == "true" }
            #expect(closed == "false", "the connection closed under an open watch")
            _ = try await environment.rancher.call(.POST, "/api/v1/namespaces/cattle-system/configmaps", #"{"metadata":{"name":"h2-later"}}"#)
            let later = try await client.read(until: Array("h2-later".utf8))
            #expect(String(decoding: later, as: UTF8.self).contains("h2-later"), "the watch stopped delivering")
            received += later
            try await environment.rancher.call(.DELETE, environment.rancher.tokens + "/\(alice.prefix { $0 != ":" })")
            received += try await client.readBytesToEnd(timeout: .seconds(30))
            let frames = RawHTTP2.frames(received)
            #expect(client.endedBeforeDeadline, "the connection is still open 30 s after its only stream ended")
            #expect(RawHTTP2.goAwayErrors(frames) == [0], "frames (type, stream): \(frames.map { ($0.type, $0.stream) })")
        }
        #expect(try environment.proxy.stop() == 0)
    }

    @Test("At the drain timeout, TLS clients that stopped reading are closed all at once: the proxy exits soon after it")
    func stuckClientsDoNotHoldTheExit() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy(["--drain-timeout", "2"])
        let alice = try await environment.rancher.createToken(user: "u-alice")
        var clients: [ChildProcess] = []
        defer {
            for client in clients where client.isRunning {
                kill(client.processIdentifier, SIGKILL)
                kill(client.processIdentifier, SIGCONT)
            }
        }
        for index in 0..<3 {
            // openssl s_client as a watch client; its output is never read, and it is stopped below,
            // so it neither reads nor ever answers the proxy's close_notify.
            let client = ChildProcess()
            client.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            client.arguments = ["s_client", "-quiet", "-connect", environment.proxy.address, "-CAfile", environment.caPath, "-alpn", "http/1.1"]
            let input = Pipe()
            client.standardInput = .pipe(input)
            client.standardOutput = .pipe(Pipe())
            try client.run()
            ChildReaper.watch(client.processIdentifier)
            clients.append(client)
            let request =
                "GET /api/v1/namespaces/cattle-system/configmaps?watch=1&marker=stuck-\(index) HTTP/1.1\r\nHost: proxy\r\n"
                + "Authorization: Bearer \(alice)\r\n\r\n"
            PipeIO.writeAll(Data(request.utf8), to: input.fileHandleForWriting)
        }
        for index in 0..<3 {
            let seen = try await repeatUntil(within: .seconds(20), { "\(environment.upstreamRequests("marker=stuck-\(index)").count)" }) { $0 != "0" }
            #expect(seen == "1", "watch \(index) did not reach the upstream")
        }
        for client in clients { kill(client.processIdentifier, SIGSTOP) }
        let terminated = ContinuousClock.now
        #expect(try environment.proxy.stop() == 0)
        let exitedAfter = ContinuousClock.now - terminated
        // Closed one after another, each waiting for a close_notify that never comes, they once
        // took 2 s + 3 × 5 s = 17 s. A bound between the two, generous for a loaded machine.
        #expect(exitedAfter < .seconds(12), "the proxy exited \(exitedAfter) after SIGTERM with a 2 s drain timeout")
        print("proxy with three stopped TLS clients exited \(exitedAfter) after SIGTERM (drain timeout 2 s)")
        #expect(environment.proxy.output.contains("drain timeout reached; closing remaining connections"))
    }

    @Test(
        "A revocation ends the token's open exchanges: an HTTP/1.1 chunked watch, an HTTP/2 watch, an exec session; another token's watch stays open")
    func revocationEndsOpenExchanges() async throws {
        let environment = try await ProxyEnvironment()
        // The control watch is still open at the stop: a short drain.
        try environment.startProxy(["--drain-timeout", "1"])
        let alice = try await environment.rancher.createToken(user: "u-alice", groups: ["g://devs"])
        let bob = try await environment.rancher.createToken(user: "u-bob", groups: ["g://devs"])
        let pod =
            #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"shell","namespace":"team"},"spec":{"containers":[{"name":"main","image":"busybox"}]},"status":{"phase":"Running"}}"#
        _ = try environment.server.state.create(.pods, namespace: "team", object: try JSONValue.parse(Data(pod.utf8)))
        func watch(_ name: String, _ token: String, _ protocolFlag: String) throws -> BackgroundProcess {
            try BackgroundProcess(
                name: name, executable: "/usr/bin/curl",
                arguments: [
                    "-s", "-N", protocolFlag, "--cacert", environment.caPath, "-H", "Authorization: Bearer \(token)",
                    environment.url + "/api/v1/namespaces/cattle-system/configmaps?watch=1",
                ],
                logPath: environment.scratch.file("\(name).log"))
        }
        let watches = [
            "http/1.1": try watch("h1", alice, "--http1.1"), "h2": try watch("h2", alice, "--http2"),
            "control": try watch("control", bob, "--http1.1"),
        ]
        defer { for watch in watches.values { watch.stop(grace: 1) } }
        // kubectl exec -i with its standard input held open: the session lasts until something ends it.
        let exec = ChildProcess()
        exec.executableURL = URL(fileURLWithPath: try #require(kubectlPath))
        exec.arguments = [
            "--kubeconfig", "/dev/null", "--server", environment.url, "--certificate-authority", environment.caPath, "--token", alice,
            "exec", "-i", "shell", "-n", "team", "--", "cat",
        ]
        let input = Pipe()
        let execLog = environment.scratch.file("exec.log")
        _ = FileManager.default.createFile(atPath: execLog, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: execLog))
        exec.standardInput = .pipe(input)
        exec.standardOutput = .handle(output)
        exec.standardError = .handle(output)
        try exec.run()
        ChildReaper.watch(exec.processIdentifier)
        defer { if exec.isRunning { exec.terminate() } }
        PipeIO.writeAll(Data("first line\n".utf8), to: input.fileHandleForWriting)
        let echoed = try await repeatUntil(within: .seconds(20), { (try? String(contentsOfFile: execLog, encoding: .utf8)) ?? "" }) {
            $0.contains("first line")
        }
        #expect(echoed.contains("first line"), "the exec session did not start: \(echoed)")
        _ = try await environment.rancher.call(.POST, "/api/v1/namespaces/cattle-system/configmaps", #"{"metadata":{"name":"opened"}}"#)
        for (name, watch) in watches {
            let seen = try await repeatUntil(within: .seconds(20), { watch.log }) { $0.contains("opened") }
            #expect(seen.contains("opened"), "the \(name) watch did not start")
        }

        let name = String(alice.prefix { $0 != ":" })
        let changed = ContinuousClock.now
        try await environment.rancher.patch(environment.rancher.tokens + "/\(name)", #"{"enabled":false}"#)
        var ended: [String: Duration] = [:]
        _ = try await repeatUntil(
            within: .seconds(30),
            {
                for (kind, watch) in watches where kind != "control" && ended[kind] == nil && !watch.isRunning {
                    ended[kind] = ContinuousClock.now - changed
                }
                if ended["exec"] == nil, !exec.isRunning { ended["exec"] = ContinuousClock.now - changed }
                return "\(ended.count)"
            }
        ) { $0 == "3" }
        #expect(Set(ended.keys) == ["http/1.1", "h2", "exec"], "still open: \(ended.keys)")
        #expect(watches["control"]?.isRunning == true, "another token's watch was ended")
        _ = try await environment.rancher.call(.POST, "/api/v1/namespaces/cattle-system/configmaps", #"{"metadata":{"name":"after"}}"#)
        let control = try await repeatUntil(within: .seconds(20), { watches["control"]?.log ?? "" }) { $0.contains("after") }
        #expect(control.contains("after"))
        let log = environment.proxy.output
        #expect(log.contains("msg=\"session ended\"") && log.contains("reason=token_disabled") && log.contains("user=u-alice"))
        #expect(!log.contains("user=u-bob reason"), "\(log)")
        print("open exchanges ended after the token was disabled: \(ended.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" })")
        #expect(try environment.proxy.stop() == 0)
    }

    @Test(
        "10,000 seeded hostile requests (headers, smuggling, oversized, invalid UTF-8, impersonation, credentials): no crash, no client Impersonate-* under the proxy's identity, no Rancher token upstream"
    )
    func hostileRequests() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["FUZZ_SEED"] ?? "") ?? 0xF00D_CAFE
        var generator = SeededGenerator(state: seed)
        let environment = try await ProxyEnvironment()
        let proxy = try environment.startProxy(["--metrics-listen", "127.0.0.1:0", "--no-audit-log", "--header-timeout", "2"])
        let alice = try await environment.rancher.createToken(user: "u-alice", groups: ["g://devs"])
        let aliceSecret = String(alice.split(separator: ":")[1])
        let requests = (0..<(ProcessInfo.processInfo.environment["FUZZ_DEBUG"] != nil ? 300 : 10_000)).map {
            ProxyFuzz.request($0, &generator, token: alice)
        }
        let concurrency = 8
        var statuses: [String: Int] = [:]
        try await withThrowingTaskGroup(of: [String].self) { group in
            for worker in 0..<concurrency {
                let slice = stride(from: worker, to: requests.count, by: concurrency).map { requests[$0] }
                group.addTask {
                    var results: [String] = []
                    for request in slice {
                        let began = ContinuousClock.now
                        let (answer, closed) = try await environment.withConnection { client in
                            try? await client.send(request)
                            return (try await client.read(until: "\r\n\r\n", timeout: .seconds(5)), client.closed)
                        }
                        if ProcessInfo.processInfo.environment["FUZZ_DEBUG"] != nil, answer.contains(" 400 ") || answer.isEmpty {
                            print(
                                "FUZZ \(answer.isEmpty ? "closed" : "400") after \(ContinuousClock.now - began) closed=\(closed): \(String(decoding: request.prefix(600), as: UTF8.self).debugDescription)"
                            )
                        }
                        results.append(String(answer.prefix(12).dropFirst(9)))
                    }
                    return results
                }
            }
            for try await results in group {
                for status in results { statuses[status.isEmpty ? "closed" : status, default: 0] += 1 }
            }
        }
        print("hostile requests through the proxy, by status: \(statuses.sorted { $0.key < $1.key })")
        #expect(statuses.values.reduce(0, +) == 10_000)
        // Still serving, and alive by its own probe.
        #expect(try environment.curl("/api?after-fuzz", ["-H", "Authorization: Bearer \(alice)"]).hasSuffix("\n200"))
        let health = try #require(proxy.output.split(separator: "\n").first { $0.contains("purpose=\"health and metrics\"") })
        let healthAddress = String(health.split(separator: "address=").last?.prefix { $0 != " " } ?? "")
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "http://\(healthAddress)/livez"]) == "200")

        let upstream = environment.upstreamRequests("fuzz-")
        #expect(upstream.count > 500, "only \(upstream.count) fuzzed requests were forwarded")
        let proxyCredential = "Bearer \(environment.upstreamToken)"
        for seen in upstream {
            let text = seen.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n") + seen.uri
            // Where kube-apiserver reads a credential (a client that writes its token into some
            // other header, or a damaged protocol entry, sends it there itself, as no credential).
            let bearerEntries = seen.values("sec-websocket-protocol").flatMap { $0.split(separator: ",") }
                .map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { $0 == "base64url.bearer.authorization.k8s.io." + ProxyFuzz.encodedBearer(alice) }
            #expect(
                !seen.values("authorization").contains { $0.contains(aliceSecret) } && bearerEntries.isEmpty,
                "seed \(seed): the Rancher token went upstream: \(text.prefix(300))")
            if seen.values("authorization").contains(proxyCredential) {
                #expect(!text.contains(aliceSecret) && !text.contains(ProxyFuzz.encodedBearer(alice)), "seed \(seed): \(text.prefix(300))")
                let impersonation = seen.headers.filter { $0.name.lowercased().hasPrefix("impersonate-") }
                #expect(
                    !impersonation.contains { $0.value.contains("fuzz-imp") },
                    "seed \(seed): a client's impersonation under the proxy's identity: \(impersonation)")
                #expect(seen.values("impersonate-user") == ["u-alice"], "seed \(seed): \(impersonation)")
                #expect(seen.values("authorization").count == 1)
            }
        }
        #expect(!proxy.output.contains("Fatal error"))
        #expect(try proxy.stop() == 0)
    }
}

/// Hostile proxy requests, reproducible from a seed.
enum ProxyFuzz {
    static func encodedBearer(_ token: String) -> String {
        Data(token.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func request(_ index: Int, _ generator: inout SeededGenerator, token: String) -> [UInt8] {
        func pick<T>(_ values: [T]) -> T { values[Int(generator.next() % UInt64(values.count))] }
        func chance(_ percent: UInt64) -> Bool { generator.next() % 100 < percent }
        let marker = "fuzz-\(index)"
        let paths = [
            "/api/v1/namespaces/cattle-system/configmaps?\(marker)", "/api?\(marker)", "/version?\(marker)",
            "/api/v1/namespaces/kube-system/secrets?\(marker)&x=%00%ff", "/apis/../api?\(marker)", "//api?\(marker)",
            "/api/v1/namespaces/team/pods/shell/exec?command=cat&\(marker)", "/\(String(repeating: "a", count: 9000))?\(marker)",
        ]
        var lines: [[UInt8]] = []
        let method = pick(["GET", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "G\u{1}T", "get"])
        lines.append(Array("\(method) \(pick(paths)) \(pick(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x"]))".utf8))
        lines.append(Array("Host: \(pick(["proxy", "", "a b", "proxy:443"]))".utf8))
        let secret = String(token.split(separator: ":")[1])
        switch generator.next() % 8 {
        case 0, 1: lines.append(Array("Authorization: Bearer \(token)".utf8))
        case 2: lines.append(Array("Authorization: Bearer \(token)x".utf8))
        case 3: lines.append(Array("Authorization: \(pick(["bearer", "BEARER", "Bearer  ", "Basic"])) \(token)".utf8))
        case 4:
            lines.append(Array("Authorization: Bearer \(token)".utf8))
            lines.append(Array("Authorization: Bearer \(pick(["other", token]))".utf8))
        case 5:
            lines.append(Array("Connection: Upgrade".utf8))
            lines.append(Array("Upgrade: \(pick(["websocket", "SPDY/3.1", "h2c"]))".utf8))
            lines.append(Array("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".utf8))
            lines.append(Array("Sec-WebSocket-Version: 13".utf8))
            var entries = ["v5.channel.k8s.io", "base64url.bearer.authorization.k8s.io.\(encodedBearer(token))"]
            if chance(30) { entries.append("base64url.bearer.authorization.k8s.io.\(encodedBearer("x:" + secret))") }
            if chance(20) { entries.append("base64url.bearer.authorization.k8s.io.!!!") }
            lines.append(Array("Sec-WebSocket-Protocol: \(entries.joined(separator: ", "))".utf8))
        case 6: lines.append(Array("Authorization: Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6Im90aGVyIn0.eyJzdWIiOiJmdXp6In0.c2ln".utf8))
        default: break
        }
        for _ in 0..<Int(generator.next() % 4) {
            switch generator.next() % 7 {
            case 0: lines.append(Array("Impersonate-User: \(pick(["system:admin", "fuzz-imp-user"]))-fuzz-imp".utf8))
            case 1: lines.append(Array("Impersonate-Group: system:masters-fuzz-imp".utf8))
            case 2: lines.append(Array("impersonate-extra-\(pick(["scopes", "a%20b", "%zz"])): fuzz-imp".utf8))
            case 3: lines.append(Array("Impersonate-Uid: fuzz-imp-uid".utf8))
            case 4: lines.append(Array("IMPERSONATE-USER: fuzz-imp-upper".utf8))
            case 5: lines.append(Array("Connection: \(pick(["close, Impersonate-User", "Impersonate-Group", "keep-alive"]))".utf8))
            default: lines.append(Array("Impersonate-\(pick(["Foo", "", "User "])): fuzz-imp-odd".utf8))
            }
        }
        var body: [UInt8] = []
        switch generator.next() % 16 {
        case 0:
            body = Array("{\"a\":1}".utf8)
            lines.append(Array("Content-Length: \(body.count)".utf8))
            lines.append(Array("Transfer-Encoding: chunked".utf8))
        case 1:
            lines.append(Array("Content-Length: 0".utf8))
            lines.append(Array("Content-Length: \(pick(["5", "0", "00"]))".utf8))
        case 2:
            lines.append(Array("Transfer-Encoding: \(pick(["gzip, chunked", "chunked, identity", "identity", "xchunked"]))".utf8))
        case 3:
            body = Array("5\r\nhello\r\n0\r\n\r\n".utf8)
            lines.append(Array("Transfer-Encoding: chunked".utf8))
        case 4:
            body = Array(repeating: UInt8(ascii: "b"), count: Int(generator.next() % 70_000))
            lines.append(Array("Content-Length: \(body.count)".utf8))
        case 5:
            lines.append(Array("X-Bytes: ".utf8) + (0..<40).map { _ in UInt8(truncatingIfNeeded: generator.next() | 0x80) })
        case 6:
            lines.append(Array("X-Big: \(String(repeating: "v", count: Int(generator.next() % 40_000)))".utf8))
        case 7:
            lines.append(Array(" folded-continuation: x".utf8))
            lines.append(Array("Bad Header: y".utf8))
        case 8:
            lines.append(Array("X-Forwarded-For: \(pick(["1.2.3.4", "", "evil\u{7f}"]))".utf8))
            lines.append(Array("Content-Length: \(pick(["-1", "1e3", "+4", " 4 "]))".utf8))
            body = Array("abcd".utf8)
        default:
            break
        }
        lines.append(Array("Connection: close".utf8))
        var bytes = lines.map { $0 + [13, 10] }.joined().map { $0 }
        bytes += [13, 10]
        bytes += body
        // Byte-level damage now and then.
        if chance(5), !bytes.isEmpty {
            let position = Int(generator.next() % UInt64(bytes.count))
            bytes[position] = pick([0, 10, 13, 0xFF, UInt8(ascii: ":")])
        }
        return bytes
    }
}
