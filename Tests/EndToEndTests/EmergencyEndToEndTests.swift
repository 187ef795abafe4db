import Foundation
import Testing
import TestSupport

/// `kube-api-auth emergency …` and the service answering emergency tokens, with the real binary.
@Suite("Emergency access, end to end", .serialized)
struct EmergencyEndToEndTests {
    /// Runs `emergency keygen` into `keys` and returns the Secret manifest it printed.
    static func keygen(_ keys: TemporaryDirectory, name: String, audience: String = "kube-api-auth:e2e", maxTTL: String = "2h") throws -> String {
        let result = try Binary.run(["emergency", "keygen", "--private-key", keys.file(name), "--audience", audience, "--max-ttl", maxTTL])
        guard result.status == 0 else { throw ProcessError(description: "keygen: \(result.stderr)") }
        // The key's body, so that every service log is checked for it.
        let pem = try String(contentsOfFile: keys.file(name), encoding: .utf8)
        for line in pem.split(separator: "\n") where !line.hasPrefix("-----") { Credentials.register(secret: String(line)) }
        return result.stdout
    }

    /// Runs `emergency issue`; returns the token and its jti.
    static func issue(
        _ keys: TemporaryDirectory, key: String, user: String, ttl: String = "1h", global: [String] = [], extra: [String] = []
    ) throws -> (token: String, jti: String) {
        let result = try Binary.run(
            global + ["emergency", "issue", "--private-key", keys.file(key), "--user", user, "--ttl", ttl, "--reason", "INC-7 rancher down"] + extra)
        guard result.status == 0 else { throw ProcessError(description: "issue: \(result.stderr)") }
        let token = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        Credentials.register(secret: token)
        Credentials.register(secret: String(token.split(separator: ".").last ?? ""))
        let jti = result.stderr.components(separatedBy: "issued jti ").last?.split(separator: " ").first.map(String.init) ?? ""
        return (token, jti)
    }

    @Test("keygen, issue, review; revocation, a removed key and a removed Secret take effect on reload; nothing secret is logged")
    func lifecycle() async throws {
        let records = try TemporaryDirectory()
        let keys = try TemporaryDirectory()
        for file in try FileManager.default.contentsOfDirectory(atPath: examplesDirectory) {
            try FileManager.default.copyItem(atPath: examplesDirectory + "/" + file, toPath: records.file(file))
        }
        let manifest = try Self.keygen(keys, name: "key.pem")
        let attributes = try FileManager.default.attributesOfItem(atPath: keys.file("key.pem"))
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(manifest.contains("kind: Secret") && manifest.contains("jwks:") && !manifest.contains("PRIVATE"))
        let again = try Binary.run(["emergency", "keygen", "--private-key", keys.file("key.pem")])
        #expect(again.status != 0 && again.stderr.contains("exists"), "\(again.stderr)")
        try records.write("emergency.yaml", manifest)

        // The TTL limit is checked against the Secret when it can be read.
        let tooLong = try Binary.run(
            [
                "emergency", "issue", "--private-key", keys.file("key.pem"), "--user", "u-demo1", "--ttl", "3h", "--reason", "x",
                "--secret-file", records.file("emergency.yaml"),
            ])
        #expect(tooLong.status != 0 && tooLong.stderr.contains("longer than the cluster allows"), "\(tooLong.stderr)")
        let (token, jti) = try Self.issue(keys, key: "key.pem", user: "u-demo1", extra: ["--secret-file", records.file("emergency.yaml")])
        #expect(token.split(separator: ".").count == 3 && !jti.isEmpty)

        let service = try ServiceProcess(serve: ["--records-dir", records.path, "--records-poll-interval", "0.1"])
        let answer = try await post(service.baseURL + "/v1/authenticate", review(token, apiVersion: "authentication.k8s.io/v1")).2
        #expect(answer.contains(#""username":"u-demo1""#) && answer.contains("github_org://rancher"), "\(answer)")
        try service.waitForLog(containing: "jti=\(jti)")
        #expect(service.output.contains("emergency=true"))
        #expect(service.output.contains(#"emergency_reason="INC-7 rancher down""#))
        #expect(try curl([service.baseURL + "/readyz?verbose"]).contains("emergency access: on, 1 key(s), 0 revoked"))
        let metrics = try curl([service.baseURL + "/metrics"])
        #expect(metric(metrics, #"kube_api_auth_emergency_reviews_total{outcome="authenticated"}"#) == 1)
        // The records gauge in directory mode (it once read 0 for every kind here).
        #expect((metric(metrics, #"kube_api_auth_records{kind="clusterauthtokens"}"#) ?? 0) >= 1, "\(metrics)")
        #expect(metric(metrics, #"kube_api_auth_records{kind="emergency-secret"}"#) == 1)

        // Revocation: the printed patch adds revoked.<jti>; here the directory's manifest gets it.
        let revoke = try Binary.run(["emergency", "revoke", jti, "--reason", "done"])
        #expect(revoke.status == 0)
        #expect(revoke.stdout.hasPrefix("kubectl -n cattle-system patch secret kube-api-auth-emergency --type merge -p "))
        #expect(revoke.stdout.contains(#""revoked.\#(jti)":"#))
        try records.write("emergency.yaml", manifest + "  revoked.\(jti): \"done\"\n")
        let revoked = try await reviewUntil(service, token) { $0.contains("revoked") }
        #expect(revoked.contains(#""error":"emergency token is revoked""#), "\(revoked); service log:\n\(service.output)")

        // A second token works; then its key is replaced by another one: refused as an unknown key (bare).
        let (second, _) = try Self.issue(keys, key: "key.pem", user: "u-demo1", extra: ["--audience", "kube-api-auth:e2e"])
        #expect(authenticated(try await reviewUntil(service, second, authenticated)))
        try records.write("emergency.yaml", try Self.keygen(keys, name: "rotated.pem"))
        let unknown = try await reviewUntil(service, second) { !authenticated($0) }
        #expect(unknown.contains(#""authenticated":false"#) && !unknown.contains("error"), "\(unknown)")

        // No Secret, no emergency path.
        try FileManager.default.removeItem(atPath: records.file("emergency.yaml"))
        _ = try await curlUntil([service.baseURL + "/readyz?verbose"]) { $0.contains("emergency access: off") }
        let (third, _) = try Self.issue(keys, key: "rotated.pem", user: "u-demo1")
        #expect(!authenticated(try await post(service.baseURL + "/v1/authenticate", review(third)).2))
        #expect(try service.stop() == 0)
    }

    @Test("ES256 keys on request: keygen --algorithm es256, issue, and the service accepts the token")
    func es256() async throws {
        let records = try TemporaryDirectory()
        let keys = try TemporaryDirectory()
        try FileManager.default.copyItem(atPath: examplesDirectory + "/user-u-demo1.yaml", toPath: records.file("user-u-demo1.yaml"))
        let generated = try Binary.run(
            ["emergency", "keygen", "--algorithm", "es256", "--private-key", keys.file("p256.pem"), "--audience", "kube-api-auth:e2e"])
        #expect(generated.status == 0, "\(generated.stderr)")
        #expect(generated.stdout.contains(#"\"alg\":\"ES256\""#) && generated.stdout.contains(#"\"crv\":\"P-256\""#))
        for line in (try String(contentsOfFile: keys.file("p256.pem"), encoding: .utf8)).split(separator: "\n") where !line.hasPrefix("-----") {
            Credentials.register(secret: String(line))
        }
        try records.write("emergency.yaml", generated.stdout)
        let (token, _) = try Self.issue(keys, key: "p256.pem", user: "u-demo1", extra: ["--secret-file", records.file("emergency.yaml")])
        let service = try ServiceProcess(serve: ["--records-dir", records.path])
        #expect(try await post(service.baseURL + "/v1/authenticate", review(token)).2.contains(#""username":"u-demo1""#))
        #expect(try service.stop() == 0)
    }

    @Test("CLI errors name the flag")
    func cliErrors() throws {
        let keys = try TemporaryDirectory()
        try "not a key".write(toFile: keys.file("bad.pem"), atomically: true, encoding: .utf8)
        let bad = try Binary.run(["emergency", "issue", "--private-key", keys.file("bad.pem"), "--user", "u-1", "--reason", "x"])
        #expect(bad.status != 0 && bad.stderr.contains("--private-key"), "\(bad.stderr)")
        let ttl = try Binary.run(["emergency", "issue", "--private-key", keys.file("bad.pem"), "--user", "u-1", "--reason", "x", "--ttl", "soon"])
        #expect(ttl.status != 0 && ttl.stderr.contains("--ttl \"soon\""), "\(ttl.stderr)")
        let jti = try Binary.run(["emergency", "revoke", "bad jti!"])
        #expect(jti.status != 0 && jti.stderr.contains("is not a token id"), "\(jti.stderr)")
    }
}
