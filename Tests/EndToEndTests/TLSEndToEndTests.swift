import Foundation

#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport

/// A throwaway CA, server certificate (for 127.0.0.1) and client certificate made with openssl.
final class TestCertificates {
    /// Swaps `server.pem`/`server.key` into place with rename(2), as a rotating writer would; the
    /// new files belong to the pod's user, as in a rotated Secret volume.
    func installServerIdentity(certificate: String, key: String) throws {
        for (from, to) in [("server.pem", certificate), ("server.key", key)] {
            let staging = to + ".new"
            try? FileManager.default.removeItem(atPath: staging)
            try FileManager.default.copyItem(atPath: path(from), toPath: staging)
            try PodUser.handOver(staging)
            guard rename(staging, to) == 0 else { throw ProcessError(description: "rename \(staging) failed") }
        }
    }

    private let scratch: TemporaryDirectory
    private let authority: CertificateAuthority
    var directory: String { scratch.path }

    init() throws {
        scratch = try TemporaryDirectory()
        authority = try CertificateAuthority(in: scratch.path)
        try authority.issue("server", subject: "/CN=server", extensions: "subjectAltName=IP:127.0.0.1")
        try authority.issue("client", subject: "/CN=client", extensions: "extendedKeyUsage=clientAuth")
    }

    func path(_ name: String) -> String { authority.path(name) }
}

/// Whether the kubectl in use has `auth whoami` (kubectl ≥ 1.27; Debian's 1.20 has not).
let kubectlHasWhoami: Bool = {
    guard kubectlPath != nil else { return false }
    return (try? kubectl(["auth", "whoami", "--help"]).status) == 0
}()

@Suite("TLS serving, end to end")
struct TLSEndToEndTests {
    @Test("HTTPS: curl gets the review over TLS; plain HTTP to the TLS port fails")
    func https() throws {
        let certificates = try TestCertificates()
        let service = try ServiceProcess(serve: [
            "--records-dir", examplesDirectory, "--tls-cert-file", certificates.path("server.pem"),
            "--tls-private-key-file", certificates.path("server.key"),
        ])
        let body = try curl(["--cacert", certificates.path("ca.pem"), "-d", review(demoToken), "https://\(service.address)/v1/authenticate"])
        #expect(body.contains(#""authenticated":true"#))
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", "http://\(service.address)/healthcheck"]) != "200")
        #expect(try service.stop() == 0)
    }

    @Test("mTLS: only clients with a certificate from --client-ca-file get an answer")
    func mutualTLS() throws {
        let certificates = try TestCertificates()
        let service = try ServiceProcess(serve: [
            "--records-dir", examplesDirectory, "--tls-cert-file", certificates.path("server.pem"),
            "--tls-private-key-file", certificates.path("server.key"), "--client-ca-file", certificates.path("ca.pem"),
        ])
        let url = "https://\(service.address)/v1/authenticate"
        let withCertificate = try curl([
            "--cacert", certificates.path("ca.pem"), "--cert", certificates.path("client.pem"), "--key", certificates.path("client.key"),
            "-d", review(demoToken), url,
        ])
        #expect(withCertificate.contains(#""authenticated":true"#))
        let without = try runProcess("/usr/bin/curl", ["-s", "-m", "10", "--cacert", certificates.path("ca.pem"), "-d", review(demoToken), url])
        #expect(without.status != 0)
        #expect(!without.stdout.contains("authenticated"))
        #expect(try service.stop() == 0)
    }

    @Test("kubectl auth whoami with a Rancher token", .enabled(if: kubectlHasWhoami, "needs kubectl ≥ 1.27 with auth whoami"))
    func kubectlWhoami() throws {
        let certificates = try TestCertificates()
        let service = try ServiceProcess(serve: [
            "--records-dir", examplesDirectory, "--tls-cert-file", certificates.path("server.pem"),
            "--tls-private-key-file", certificates.path("server.key"),
        ])
        let common = ["--server", "https://\(service.address)", "--certificate-authority", certificates.path("ca.pem"), "--kubeconfig", "/dev/null"]
        let allowed = try kubectl(["auth", "whoami", "-o", "json", "--token", demoToken] + common)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(allowed.stdout.contains(#""username": "u-demo1""#))
        #expect(allowed.stdout.contains("github_org://rancher"))
        let refused = try kubectl(["auth", "whoami", "--token", "kubeconfig-u-demo15wfb6:wrong"] + common)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("Unauthorized"))
        #expect(try service.stop() == 0)
    }

    @Test("Rotated certificate files are picked up without a restart; unusable ones keep the old identity")
    func certificateReload() throws {
        let first = try TestCertificates()
        let second = try TestCertificates()
        let scratch = try TemporaryDirectory()
        let certificate = (scratch.path as NSString).appendingPathComponent("tls.crt")
        let key = (scratch.path as NSString).appendingPathComponent("tls.key")
        func install(_ source: TestCertificates) throws { try source.installServerIdentity(certificate: certificate, key: key) }
        try FileManager.default.copyItem(atPath: first.path("server.pem"), toPath: certificate)
        try FileManager.default.copyItem(atPath: first.path("server.key"), toPath: key)
        let service = try ServiceProcess(serve: [
            "--records-dir", examplesDirectory, "--tls-cert-file", certificate, "--tls-private-key-file", key, "--tls-reload-interval", "0.1",
        ])
        let url = "https://\(service.address)/livez"
        #expect(try curl(["--cacert", first.path("ca.pem"), url]) == "ok\n")
        try install(second)
        try service.waitForLog(containing: "TLS certificate reloaded")
        #expect(try curl(["--cacert", second.path("ca.pem"), url]) == "ok\n")
        #expect(try runProcess("/usr/bin/curl", ["-s", "-m", "10", "--cacert", first.path("ca.pem"), url]).status != 0)
        // The swap above may have been seen half done (new certificate, old key): only a later line counts.
        let mark = service.logMark
        try "not a certificate".write(toFile: certificate, atomically: true, encoding: .utf8)
        try service.waitForLog(containing: "TLS files changed but cannot be used", since: mark)
        #expect(try curl(["--cacert", second.path("ca.pem"), url]) == "ok\n")
        #expect(try service.stop() == 0)
    }

    @Test("Bad TLS files are named in the error")
    func badFiles() throws {
        let result = try Binary.run([
            "serve", "--records-dir", examplesDirectory, "--tls-cert-file", "/nonexistent.pem", "--tls-private-key-file", "/nonexistent.key",
        ])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--tls-cert-file /nonexistent.pem"))
        let alone = try Binary.run(["serve", "--records-dir", examplesDirectory, "--client-ca-file", "/x.pem"])
        #expect(alone.stderr.contains("--client-ca-file needs --tls-cert-file"))
    }
}
