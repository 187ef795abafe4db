import Crypto
import Foundation
import RancherAuth
import Testing

/// Builds emergency tokens the way an issuer (or an attacker) would, byte by byte.
struct EmergencyFixture {
    static let now = Timestamp(seconds: 1_800_000_000)
    let signer = Curve25519.Signing.PrivateKey()
    let kid = "k1"

    var jwk: String {
        #"{"kty":"OKP","crv":"Ed25519","kid":"\#(kid)","alg":"EdDSA","use":"sig","x":"\#(Base64URL.encode(signer.publicKey.rawRepresentation))"}"#
    }

    func access(keys: [String]? = nil, audience: String = "aud-1", maxTTL: String = "4h", revoked: [String] = []) throws -> EmergencyAccess {
        var data: [String: [UInt8]] = [
            "jwks": Array(#"{"keys":[\#((keys ?? [jwk]).joined(separator: ","))]}"#.utf8),
            "audience": Array(audience.utf8), "max-ttl": Array(maxTTL.utf8),
        ]
        for jti in revoked { data["revoked.\(jti)"] = Array("2026-11-30 test".utf8) }
        return try EmergencyAccess(secretData: data, version: "7")
    }

    static func claims(
        sub: String = "u-1", iss: String = EmergencyAccess.issuer, aud: String = #""aud-1""#, iat: Int64 = now.seconds,
        nbf: Int64? = nil, exp: Int64? = nil, jti: String = "j-1"
    ) -> String {
        #"{"iss":"\#(iss)","aud":\#(aud),"sub":"\#(sub)","iat":\#(iat),"nbf":\#(nbf ?? iat),"exp":\#(exp ?? iat + 3600),"jti":"\#(jti)","reason":"INC-1"}"#
    }

    func header(alg: String = "EdDSA", kid: String? = nil) -> String {
        #"{"alg":"\#(alg)","kid":"\#(kid ?? self.kid)","typ":"JWT"}"#
    }

    /// `header.payload` signed by `key` (this fixture's signer unless another is given).
    func token(header: String? = nil, claims: String = claims(), key: Curve25519.Signing.PrivateKey? = nil) throws -> String {
        let input = Base64URL.encode(Array((header ?? self.header()).utf8)) + "." + Base64URL.encode(Array(claims.utf8))
        let signature = try (key ?? signer).signature(for: Data(input.utf8))
        return input + "." + Base64URL.encode(signature)
    }

    static func snapshot(access: EmergencyAccess?, users: [ClusterUserAttribute]? = nil) -> RecordSnapshot {
        RecordSnapshot(
            tokens: [],
            users: users ?? [
                ClusterUserAttribute(metadata: ObjectMeta(name: "u-1", resourceVersion: "1"), groups: ["g://ops"], enabled: true),
                ClusterUserAttribute(metadata: ObjectMeta(name: "u-off", resourceVersion: "1"), groups: [], enabled: false),
            ], hashSecrets: [], emergency: access)
    }

    func review(_ token: String, access: EmergencyAccess? = nil, users: [ClusterUserAttribute]? = nil) throws -> Decision {
        Authenticator().review(token: token, snapshot: Self.snapshot(access: try access ?? self.access(), users: users), now: Self.now)
    }
}

@Suite("Emergency tokens")
struct EmergencyTokenTests {
    let fixture = EmergencyFixture()

    @Test("A valid token is the named user with the groups of its ClusterUserAttribute")
    func valid() throws {
        let decision = try fixture.review(try fixture.token())
        guard case .authenticated(let user) = decision.outcome else {
            Issue.record("refused: \(String(describing: decision.refusalReason))")
            return
        }
        #expect(user.attribute.name == "u-1")
        #expect(user.attribute.groups == ["g://ops"])
        #expect(decision.emergency == EmergencyUse(jti: "j-1", kid: "k1", reason: "INC-1"))
        #expect(decision.effects.isEmpty)
    }

    @Test("The groups follow the ClusterUserAttribute, not the token")
    func groupsFollowUser() throws {
        let changed = [ClusterUserAttribute(metadata: ObjectMeta(name: "u-1", resourceVersion: "2"), groups: ["g://new"], enabled: true)]
        guard case .authenticated(let user) = try fixture.review(try fixture.token(), users: changed).outcome else {
            Issue.record("refused")
            return
        }
        #expect(user.attribute.groups == ["g://new"])
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var token: @Sendable (EmergencyFixture) throws -> String
        var access: (@Sendable (EmergencyFixture) throws -> EmergencyAccess)?
        var expected: RefusalReason
        var testDescription: String { name }
    }

    static let refusals: [Case] = [
        Case(
            name: "forged signature (another key, same kid)", token: { try $0.token(key: Curve25519.Signing.PrivateKey()) },
            expected: .emergencySignatureInvalid),
        Case(
            name: "signature of other bytes",
            token: { fixture in
                let good = try fixture.token()
                let other = try fixture.token(claims: EmergencyFixture.claims(sub: "u-2"))
                return good.split(separator: ".").prefix(2).joined(separator: ".") + "." + other.split(separator: ".")[2]
            }, expected: .emergencySignatureInvalid),
        Case(
            name: "alg none",
            token: { fixture in
                Base64URL.encode(Array(fixture.header(alg: "none").utf8)) + "." + Base64URL.encode(Array(EmergencyFixture.claims().utf8)) + ".AA"
            }, expected: .emergencyAlgorithmMismatch),
        Case(
            name: "HS256 keyed with the public key's bytes",
            token: { fixture in
                let input = Base64URL.encode(Array(fixture.header(alg: "HS256").utf8)) + "." + Base64URL.encode(Array(EmergencyFixture.claims().utf8))
                let secret = SymmetricKey(data: fixture.signer.publicKey.rawRepresentation)
                let mac = HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: secret)
                return input + "." + Base64URL.encode(Array(mac))
            }, expected: .emergencyAlgorithmMismatch),
        Case(name: "ES256 named for an EdDSA key", token: { try $0.token(header: $0.header(alg: "ES256")) }, expected: .emergencyAlgorithmMismatch),
        Case(name: "unknown kid", token: { try $0.token(header: $0.header(kid: "other")) }, expected: .emergencyUnknownKey),
        Case(
            name: "key removed from the Secret", token: { try $0.token() },
            access: { fixture in
                let other = EmergencyFixture()
                return try fixture.access(keys: [other.jwk.replacingOccurrences(of: #""kid":"k1""#, with: #""kid":"k2""#)])
            }, expected: .emergencyUnknownKey),
        Case(
            name: "expired beyond the leeway",
            token: {
                try $0.token(claims: EmergencyFixture.claims(iat: EmergencyFixture.now.seconds - 3700, exp: EmergencyFixture.now.seconds - 61))
            }, expected: .emergencyExpired),
        Case(
            name: "nbf in the future",
            token: {
                try $0.token(claims: EmergencyFixture.claims(nbf: EmergencyFixture.now.seconds + 120))
            }, expected: .emergencyNotYetValid),
        Case(
            name: "issued in the future",
            token: {
                try $0.token(claims: EmergencyFixture.claims(iat: EmergencyFixture.now.seconds + 600, nbf: EmergencyFixture.now.seconds))
            }, expected: .emergencyNotYetValid),
        Case(
            name: "lifetime over the limit",
            token: {
                try $0.token(claims: EmergencyFixture.claims(exp: EmergencyFixture.now.seconds + 5 * 3600))
            }, expected: .emergencyLifetimeTooLong),
        Case(name: "wrong audience", token: { try $0.token(claims: EmergencyFixture.claims(aud: #""aud-2""#)) }, expected: .emergencyWrongAudience),
        Case(
            name: "two audiences", token: { try $0.token(claims: EmergencyFixture.claims(aud: #"["aud-1","aud-2"]"#)) },
            expected: .emergencyWrongAudience),
        Case(name: "wrong issuer", token: { try $0.token(claims: EmergencyFixture.claims(iss: "someone")) }, expected: .emergencyWrongAudience),
        Case(name: "revoked jti", token: { try $0.token() }, access: { try $0.access(revoked: ["j-1"]) }, expected: .emergencyRevoked),
        Case(
            name: "sub without a ClusterUserAttribute", token: { try $0.token(claims: EmergencyFixture.claims(sub: "u-ghost")) },
            expected: .userNotFound),
        Case(
            name: "ClusterUserAttribute disabled", token: { try $0.token(claims: EmergencyFixture.claims(sub: "u-off")) },
            expected: .userDisabled),
        Case(
            name: "duplicate claim",
            token: { fixture in
                try fixture.token(claims: EmergencyFixture.claims().replacingOccurrences(of: #""sub":"u-1""#, with: #""sub":"u-1","sub":"u-2""#))
            }, expected: .emergencyMalformed),
        Case(
            name: "duplicate claim spelled with an escape",
            token: { fixture in
                try fixture.token(claims: EmergencyFixture.claims().replacingOccurrences(of: #""sub":"u-1""#, with: #""sub":"u-1","s\u0075b":"u-2""#))
            }, expected: .emergencyMalformed),
        Case(
            name: "duplicate header member",
            token: { fixture in
                try fixture.token(header: #"{"alg":"EdDSA","kid":"k1","kid":"k1"}"#)
            }, expected: .emergencyMalformed),
        Case(name: "crit header", token: { try $0.token(header: #"{"alg":"EdDSA","kid":"k1","crit":["exp"]}"#) }, expected: .emergencyMalformed),
        Case(
            name: "claim of the wrong type",
            token: { try $0.token(claims: EmergencyFixture.claims().replacingOccurrences(of: #""jti":"j-1""#, with: #""jti":1"#)) },
            expected: .emergencyMalformed),
        Case(
            name: "missing exp", token: { try $0.token(claims: EmergencyFixture.claims().replacingOccurrences(of: #","exp":1800003600"#, with: "")) },
            expected: .emergencyMalformed),
        Case(
            name: "payload not JSON",
            token: { fixture in
                let input = Base64URL.encode(Array(fixture.header().utf8)) + "." + Base64URL.encode(Array("not json".utf8))
                return input + "." + Base64URL.encode(try fixture.signer.signature(for: Data(input.utf8)))
            }, expected: .emergencyMalformed),
        Case(
            name: "non-canonical base64 (unused bits set)",
            token: { fixture in
                var segments = try fixture.token().split(separator: ".").map(String.init)
                // The 64-byte signature takes 86 characters, the last one with 4 unused bits: set one.
                let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
                guard let character = segments[2].last, let last = alphabet.firstIndex(of: character) else { return "" }
                segments[2] = String(segments[2].dropLast()) + String(alphabet[last | 1])
                return segments.joined(separator: ".")
            }, expected: .emergencyMalformed),
        Case(
            name: "oversized", token: { try $0.token(claims: EmergencyFixture.claims(jti: String(repeating: "j", count: 5000))) },
            expected: .emergencyMalformed),
        // Signed by a listed key, yet times that would overflow `exp + leeway` or `exp - iat` (they
        // trapped once: SIGILL on every replica while the token was replayed).
        Case(name: "exp 2^63-1, signed", token: { try $0.token(claims: EmergencyFixture.claims(exp: Int64.max)) }, expected: .emergencyMalformed),
        Case(
            name: "iat -2^63, signed", token: { try $0.token(claims: EmergencyFixture.claims(iat: Int64.min, nbf: EmergencyFixture.now.seconds)) },
            expected: .emergencyMalformed),
        Case(name: "nbf -2^63, signed", token: { try $0.token(claims: EmergencyFixture.claims(nbf: Int64.min)) }, expected: .emergencyMalformed),
        Case(
            name: "exp after 2200, signed", token: { try $0.token(claims: EmergencyFixture.claims(exp: 7_258_118_401)) },
            expected: .emergencyMalformed),
        Case(
            name: "iat before 2000, signed",
            token: { try $0.token(claims: EmergencyFixture.claims(iat: 946_684_799, nbf: EmergencyFixture.now.seconds)) },
            expected: .emergencyMalformed),
        // A jti no Secret key `revoked.<jti>` can name would make the token unrevocable.
        Case(
            name: "jti with a slash and spaces", token: { try $0.token(claims: EmergencyFixture.claims(jti: "a/b c")) }, expected: .emergencyMalformed
        ),
        Case(
            name: "jti of 246 characters (revoked.<jti> over 253)",
            token: {
                try $0.token(claims: EmergencyFixture.claims(jti: String(repeating: "j", count: 246)))
            }, expected: .emergencyMalformed),
        Case(name: "empty jti", token: { try $0.token(claims: EmergencyFixture.claims(jti: "")) }, expected: .emergencyMalformed),
        // Unreadable as ours and naming none of our keys: a foreign token (the proxy passes it on).
        Case(name: "four segments' worth in three (bad base64 length)", token: { _ in "abcde.abcde.abcde" }, expected: .emergencyUnknownKey),
        Case(
            name: "another issuer's JWT whose claims have other shapes (no jti, numeric sub)",
            token: { _ in
                Base64URL.encode(Array(#"{"alg":"RS256","kid":"oidc-1"}"#.utf8)) + "."
                    + Base64URL.encode(Array(#"{"iss":"https://idp","aud":"k8s","sub":42,"exp":1800003600}"#.utf8)) + ".c2ln"
            }, expected: .emergencyUnknownKey),
        Case(
            name: "claims of other shapes under one of our key ids",
            token: { _ in
                Base64URL.encode(Array(#"{"alg":"EdDSA","kid":"k1"}"#.utf8)) + "."
                    + Base64URL.encode(Array(#"{"iss":"https://idp","aud":"k8s","sub":42,"exp":1800003600}"#.utf8)) + ".c2ln"
            }, expected: .emergencyMalformed),
    ]

    @Test("Refused, with the closed-set reason", arguments: refusals)
    func refused(_ testCase: Case) throws {
        let access = try testCase.access?(fixture) ?? fixture.access()
        let decision = try fixture.review(try testCase.token(fixture), access: access)
        #expect(decision.refusalReason == testCase.expected)
        #expect(decision.emergency != nil)
    }

    @Test("The longest revocable jti (245 characters of [-._a-zA-Z0-9]) is accepted, and revoking it works")
    func longestRevocableID() throws {
        let jti = String(repeating: "a-b_c.", count: 40) + "z9999"
        #expect(jti.utf8.count == 245)
        let token = try fixture.token(claims: EmergencyFixture.claims(jti: jti))
        #expect(try fixture.review(token).isAuthenticated)
        #expect(try fixture.review(token, access: try fixture.access(revoked: [jti])).refusalReason == .emergencyRevoked)
    }

    @Test("The accepted time range's edges: 2000-01-01 and 2200-01-01 themselves parse")
    func timeRangeEdges() throws {
        let lower = EmergencyAccess.acceptedTimes.lowerBound
        let upper = EmergencyAccess.acceptedTimes.upperBound
        let claims = EmergencyFixture.claims(iat: lower, nbf: lower, exp: upper)
        // Parsed and checked by the rules (a lifetime of two centuries), not refused as malformed.
        #expect(try fixture.review(try fixture.token(claims: claims)).refusalReason == .emergencyLifetimeTooLong)
    }

    @Test("Within the 60 s leeway a just-expired or not-quite-valid token still works")
    func leeway() throws {
        let now = EmergencyFixture.now.seconds
        #expect(try fixture.review(try fixture.token(claims: EmergencyFixture.claims(iat: now - 3630, exp: now - 30))).isAuthenticated)
        #expect(try fixture.review(try fixture.token(claims: EmergencyFixture.claims(nbf: now + 30))).isAuthenticated)
    }

    @Test("Without an emergency Secret every JWT is a foreign token: a bare refusal")
    func secretAbsent() throws {
        let decision = Authenticator().review(
            token: try fixture.token(), snapshot: EmergencyFixture.snapshot(access: nil), now: EmergencyFixture.now)
        #expect(decision.refusalReason == .notRancherToken)
        #expect(decision.emergency == nil)
        #expect(RefusalReason.notRancherToken.statusError == nil)
        #expect(RefusalReason.emergencyUnknownKey.statusError == nil)
    }

    @Test("A Rancher token (with a colon) never takes the emergency path")
    func rancherTokensUntouched() throws {
        #expect(!EmergencyToken.isCandidate("kubeconfig-u-x:abc.def.ghi"))
        #expect(EmergencyToken.isCandidate("abc.def.ghi"))
        #expect(!EmergencyToken.isCandidate("abc..ghi"))
        #expect(!EmergencyToken.isCandidate("abc.def"))
    }

    struct SecretCase: CustomTestStringConvertible, Sendable {
        var name: String
        var data: [String: String]
        var problem: String
        var testDescription: String { name }
    }

    static let unusableSecrets: [SecretCase] = [
        SecretCase(name: "no jwks", data: ["audience": "a", "max-ttl": "4h"], problem: "no jwks entry"),
        SecretCase(name: "jwks not JSON", data: ["jwks": "{", "audience": "a", "max-ttl": "4h"], problem: "not a JSON Web Key Set"),
        SecretCase(
            name: "a private key",
            data: [
                "jwks":
                    #"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}"#,
                "audience": "a", "max-ttl": "4h",
            ],
            problem: "private material"),
        SecretCase(
            name: "an HMAC key (a key type jwt-kit's JWKS does not read: the whole set is refused)",
            data: ["jwks": #"{"keys":[{"kty":"oct","kid":"k","alg":"HS256","k":"c2VjcmV0"}]}"#, "audience": "a", "max-ttl": "4h"],
            problem: "not a JSON Web Key Set"),
        SecretCase(
            name: "an Ed25519 key that declares ES256",
            data: [
                "jwks": #"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","alg":"ES256","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
                "audience": "a", "max-ttl": "4h",
            ],
            problem: "not a usable P-256 public key"),
        SecretCase(
            name: "a key without alg",
            data: [
                "jwks": #"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#, "audience": "a",
                "max-ttl": "4h",
            ],
            problem: "must declare alg EdDSA or ES256"),
        SecretCase(
            name: "the same kid twice",
            data: [
                "jwks":
                    #"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},{"kty":"OKP","crv":"Ed25519","kid":"k","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
                "audience": "a", "max-ttl": "4h",
            ],
            problem: "listed twice"),
        SecretCase(
            name: "no audience",
            data: [
                "jwks": #"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
                "max-ttl": "4h",
            ],
            problem: "no audience"),
        SecretCase(
            name: "max-ttl not a duration",
            data: [
                "jwks": #"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
                "audience": "a", "max-ttl": "forever",
            ],
            problem: "max-ttl"),
    ]

    @Test("An emergency Secret that cannot be used is refused whole, with a reason", arguments: unusableSecrets)
    func unusableSecret(_ testCase: SecretCase) {
        #expect {
            _ = try EmergencyAccess(secretData: testCase.data.mapValues { Array($0.utf8) }, version: "1")
        } throws: { error in
            (error as? EmergencyAccess.ParseError)?.description.contains(testCase.problem) == true
        }
    }

    @Test("ES256 keys verify ES256 tokens (r || s signatures)")
    func es256() throws {
        let key = P256.Signing.PrivateKey()
        let point = Array(key.publicKey.x963Representation)
        let jwk =
            #"{"kty":"EC","crv":"P-256","kid":"e1","alg":"ES256","x":"\#(Base64URL.encode(point[1..<33]))","y":"\#(Base64URL.encode(point[33..<65]))"}"#
        let access = try fixture.access(keys: [jwk])
        let input = Base64URL.encode(Array(#"{"alg":"ES256","kid":"e1"}"#.utf8)) + "." + Base64URL.encode(Array(EmergencyFixture.claims().utf8))
        let signature = try key.signature(for: Data(input.utf8)).rawRepresentation
        #expect(try fixture.review(input + "." + Base64URL.encode(signature), access: access).isAuthenticated)
        // The DER form of the same signature is not a JWS signature.
        let der = try key.signature(for: Data(input.utf8)).derRepresentation
        #expect(try fixture.review(input + "." + Base64URL.encode(der), access: access).refusalReason == .emergencySignatureInvalid)
    }
}
