import RancherAuth
import Testing

@Suite("Object names")
struct ObjectNameTests {
    static let names: [(name: String, valid: Bool)] = [
        ("kubeconfig-u-demo15wfb6", true), ("token-abc12", true), ("a", true), ("a.b-c.d9", true), ("0", true),
        (String(repeating: "a", count: 253), true), (String(repeating: "a", count: 254), false),
        ("", false), ("A", false), ("-a", false), ("a-", false), (".a", false), ("a.", false), ("a..b", false),
        ("a.-b", false), ("a-.b", false), ("a_b", false), ("a/b", false), ("a b", false), ("é", false),
    ]

    @Test("DNS-1123 subdomains, label by label, at most 253 characters")
    func validity() {
        for (name, valid) in Self.names {
            #expect(ObjectName.isValid(name) == valid, "\(name)")
        }
    }

    @Test("A name that could be a record's is logged as it is; anything else as a fingerprint that does not contain it")
    func forLog() {
        #expect(ObjectName.forLog("kubeconfig-u-demo15wfb6") == "kubeconfig-u-demo15wfb6")
        let jwt = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJlLWJ5dGVz"
        let logged = ObjectName.forLog(jwt)
        #expect(logged.hasPrefix("invalid-name:") && logged.utf8.count == "invalid-name:".utf8.count + 16)
        #expect(!logged.contains("eyJ"))
        #expect(ObjectName.forLog(jwt) == logged, "the same input is the same fingerprint")
        #expect(ObjectName.forLog(jwt + "x") != logged)
        #expect(ObjectName.forLog(String(repeating: "\u{7}", count: 4096)).utf8.count == 29)
    }
}
