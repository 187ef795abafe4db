import Foundation
import KubeAPITestServer
import Testing
import TestSupport

@Suite("Operations: metrics, probes, logs", .serialized)
struct OperationsEndToEndTests {
    @Test("Metrics count real reviews by result and reason, with latency histograms and no leftovers in flight")
    func reviewMetrics() async throws {
        let service = try ServiceProcess(global: [], serve: ["--records-dir", examplesDirectory])
        let url = service.baseURL + "/v1/authenticate"
        for _ in 0..<3 { _ = try await post(url, review(demoToken)) }
        for _ in 0..<2 { _ = try await post(url, review("kubeconfig-u-demo15wfb6:wrong")) }
        _ = try await post(url, review("kubeconfig-u-demo1disab:disabled-demo-secret"))
        _ = try await post(url, review("nocolon"))
        _ = try await post(url, "not json")
        let exposition = try curl([service.baseURL + "/metrics"])
        let expected: [(String, Double)] = [
            (#"kube_api_auth_reviews_total{result="authenticated",reason="none"}"#, 3),
            (#"kube_api_auth_reviews_total{result="refused",reason="secret_mismatch"}"#, 2),
            (#"kube_api_auth_reviews_total{result="refused",reason="token_disabled"}"#, 1),
            (#"kube_api_auth_reviews_total{result="refused",reason="not_rancher_token"}"#, 1),
            (#"kube_api_auth_reviews_total{result="malformed",reason="invalid_json"}"#, 1),
            (#"kube_api_auth_reviews_total{result="unavailable",reason="not_synced"}"#, 0),
            ("kube_api_auth_review_duration_seconds_count", 8),
            (#"kube_api_auth_hash_verify_duration_seconds_count{algorithm="sha3"}"#, 3),
            (#"kube_api_auth_verified_cache_requests_total{result="hit"}"#, 2),
            ("kube_api_auth_reviews_in_flight", 0),
            ("kube_api_auth_verified_cache_entries", 1),
            ("kube_api_auth_scrypt_queue_depth", 0),
        ]
        for (sample, value) in expected {
            #expect(metric(exposition, sample) == value, "\(sample)")
        }
        #expect(exposition.contains("# TYPE kube_api_auth_review_duration_seconds histogram"))
        #expect(try service.stop() == 0)
    }

    @Test("--metrics-listen moves /metrics to its own address, which serves no reviews")
    func separateMetricsListener() throws {
        let scratch = try TemporaryDirectory()
        _ = scratch
        let service = try ServiceProcess(global: [], serve: ["--records-dir", examplesDirectory, "--metrics-listen", "127.0.0.1:0"])
        try service.waitForLog { $0.components(separatedBy: "msg=listening").count == 3 ? true : nil }
        let line = try #require(service.output.split(separator: "\n").first { $0.contains("msg=listening") && $0.contains("purpose=metrics") })
        let metricsAddress = String(line[line.range(of: "address=")!.upperBound...].prefix { $0 != " " })
        #expect(metricsAddress != service.address)
        let code = ["-o", "/dev/null", "-w", "%{http_code}"]
        #expect(try curl(code + ["http://\(metricsAddress)/metrics"]) == "200")
        #expect(try curl(code + ["http://\(metricsAddress)/readyz"]) == "200")
        #expect(try curl(code + ["-d", review(demoToken), "http://\(metricsAddress)/v1/authenticate"]) == "404")
        #expect(try curl(code + [service.baseURL + "/metrics"]) == "404")
        #expect(try service.stop() == 0)
    }

    @Test("JSON logs; one audit line per decision, identical ones folded, no secrets")
    func auditLines() async throws {
        let service = try ServiceProcess(global: ["--log-format", "json"], serve: ["--records-dir", examplesDirectory])
        let url = service.baseURL + "/v1/authenticate"
        _ = try await post(url, review(demoToken))
        for _ in 0..<5 { _ = try await post(url, review("kubeconfig-u-demo15wfb6:wrong")) }
        #expect(try service.stop() == 0)
        let lines = service.output.split(separator: "\n").map(String.init)
        var audits: [[String: String]] = []
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String], "not JSON: \(line)")
            #expect(object["time"] != nil && object["level"] != nil && object["msg"] != nil)
            if object["msg"] == "review" { audits.append(object) }
        }
        #expect(audits.count == 2)
        let allowed = try #require(audits.first { $0["result"] == "authenticated" })
        #expect(allowed["user"] == "u-demo1")
        #expect(allowed["token"] == "kubeconfig-u-demo15wfb6")
        #expect(allowed["source"]?.hasPrefix("127.0.0.1:") == true)
        #expect(allowed["level"] == "info")
        #expect(Double(allowed["duration_ms"] ?? "") != nil)
        let refused = try #require(audits.first { $0["result"] == "refused" })
        #expect(refused["reason"] == "secret_mismatch")
        #expect(refused["level"] == "info")
        #expect(!service.output.contains("level\":\"error"))
    }

    @Test("With its log reader gone (stderr closed), the service keeps answering and exits cleanly")
    func closedStandardError() async throws {
        let process = ChildProcess()
        let launch = try PodLaunch.command(Binary.path, ["--debug", "serve", "--records-dir", examplesDirectory, "--listen", "127.0.0.1:0"])
        process.executableURL = URL(fileURLWithPath: launch.executable)
        process.arguments = launch.arguments
        let output = Pipe()
        process.standardError = .pipe(output)
        process.standardOutput = .pipe(output)
        try process.run()
        defer {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }
        var address = ""
        for _ in 0..<100 where address.isEmpty {
            let line = PipeIO.readLine(output.fileHandleForReading)
            if line.contains("msg=listening"), let range = line.range(of: "address=") {
                address = String(line[range.upperBound...].prefix { $0 != " " })
            }
        }
        try #require(!address.isEmpty, "no listening line")
        try PodLaunch.verifyUnprivileged(pid: process.processIdentifier, binary: Binary.path)
        // From now on every write to the log fails with EPIPE: audit lines, debug lines, shutdown lines.
        try output.fileHandleForReading.close()
        let url = "http://\(address)/v1/authenticate"
        for round in 0..<20 {
            #expect(authenticated(try await post(url, review(demoToken)).2))
            // Refused (after a few, by the failure throttle rather than by hashing).
            let refused = try await post(url, review("kubeconfig-u-demo15wfb6:wrong-\(round)")).2
            #expect(!authenticated(refused))
            #expect(refused.contains(#""error":"token secret does not match""#) || refused.contains(#""error":"too many"#))
        }
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    @Test("Probes through sync and an API outage: 503 before the first sync, then 200; livez always 200")
    func probeTransitions() async throws {
        let server = try KubeAPITestServer(configuration: .init(tls: SelfSignedIdentity()))
        try await server.start()
        let rancher = RancherStandIn(server: server)
        try await rancher.installCRDs()
        let scratch = try TemporaryDirectory()
        let kubeconfig = try writeKubeconfig(for: server, in: scratch)
        try await server.stop()
        let service = try ServiceProcess(global: ["--kubeconfig", kubeconfig], serve: [])
        let code = ["-o", "/dev/null", "-w", "%{http_code}"]
        #expect(try curl(code + [service.baseURL + "/readyz"]) == "503")
        #expect(try curl(code + [service.baseURL + "/livez"]) == "200")
        #expect(try curl([service.baseURL + "/readyz?verbose"]).contains("clusterauthtokens: not synced yet"))
        try await server.start()
        try service.waitForLog(containing: "msg=\"records synced from the API; answering reviews\"")
        #expect(try await curlUntil(code + [service.baseURL + "/readyz"]) { $0 == "200" } == "200")
        // Outage: still ready (serving the last records), and verbose says the watches are down.
        // The log already has failures from the start while the server was down: wait for a new one.
        let mark = service.logMark
        try await server.stop()
        try service.waitForLog(containing: "list/watch failed", since: mark)
        #expect(try curl(code + [service.baseURL + "/readyz"]) == "200")
        #expect(try curl([service.baseURL + "/readyz?verbose"]).contains("not watching"))
        #expect(try curl(code + [service.baseURL + "/livez"]) == "200")
        let exposition = try curl([service.baseURL + "/metrics"])
        #expect((metric(exposition, #"kube_api_auth_watch_restarts_total{kind="clusterauthtokens"}"#) ?? 0) >= 1)
        #expect((metric(exposition, #"kube_api_auth_last_sync_timestamp_seconds{kind="secrets"}"#) ?? 0) > 1_700_000_000)
        #expect(try service.stop() == 0)
    }
}
