import Foundation
import Testing
import TestSupport

/// Whatever a client puts before a `:` is read as a token name. Only a string that can be an object
/// name may reach a log line; credentials of other kinds with `:x` appended, and junk, must not.
@Suite("Credentials that are not names stay out of every log, through both doors", .serialized)
struct CredentialHygieneEndToEndTests {
    /// A valid emergency token, a JWT of another issuer and 4,000 bytes of junk, each with `:x`
    /// appended; each credential is registered, so every service's log is checked for it on stop.
    static func colonVariants() throws -> [String] {
        let keys = try TemporaryDirectory()
        _ = try EmergencyEndToEndTests.keygen(keys, name: "key.pem")
        let (emergency, _) = try EmergencyEndToEndTests.issue(keys, key: "key.pem", user: "u-demo1")
        func base64URL(_ text: String) -> String {
            Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let jwt =
            base64URL(#"{"alg":"RS256","kid":"oidc"}"#) + "." + base64URL(#"{"iss":"https://idp.example","sub":"alice"}"#)
            + ".SIGNATURE" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./+=~!")
        let junk = String((0..<4000).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
        for credential in [emergency, jwt, junk] { Credentials.register(secret: credential) }
        return [emergency + ":x", jwt + ":x", junk + ":x"]
    }

    @Test("The webhook logs neither an emergency token + :x, a JWT + :x nor junk + :x, only a fingerprint")
    func webhook() async throws {
        let variants = try Self.colonVariants()
        let service = try ServiceProcess(serve: ["--records-dir", examplesDirectory])
        for variant in variants {
            let answer = try await post(service.baseURL + "/v1/authenticate", review(variant)).2
            #expect(answer.contains(#""authenticated":false"#), "\(answer.prefix(200))")
        }
        try service.waitForLog { log in log.components(separatedBy: "token=invalid-name:").count > variants.count ? true : nil }
        #expect(try service.stop() == 0)
    }

    @Test("The proxy logs none of them either, and a query with access_token is answered 400 and never forwarded")
    func proxy() async throws {
        let variants = try Self.colonVariants()
        let environment = try await ProxyEnvironment()
        try environment.startProxy()
        for variant in variants {
            let answer = try environment.curl("/api?marker=colon-variant", ["-H", "Authorization: Bearer \(variant)"])
            #expect(answer.hasSuffix("\n401"), "\(answer.suffix(200))")
        }
        #expect(environment.upstreamRequests("marker=colon-variant").isEmpty)
        try environment.proxy.waitForLog { log in log.components(separatedBy: "token=invalid-name:").count > variants.count ? true : nil }

        // A Rancher token in the query: refused, not forwarded, and the query is in no log line.
        for query in ["access_token=\(demoToken)", "ACCESS%5Ftoken=\(demoToken)"] {
            let answer = try environment.curl("/api/v1/namespaces/default/configmaps?marker=query-credential&\(query)")
            #expect(answer.hasSuffix("\n400") && answer.contains(#""kind":"Status""#), "\(answer)")
        }
        #expect(environment.upstreamRequests("marker=query-credential").isEmpty)
        #expect(!environment.proxy.output.contains("query-credential"))
        #expect(try environment.proxy.stop() == 0)
    }
}
