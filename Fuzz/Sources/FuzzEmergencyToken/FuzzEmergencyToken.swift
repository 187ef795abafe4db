import Crypto
import Foundation
import FuzzMain
import RancherAuth

/// Any bytes, used twice:
/// - as an emergency token: parsing must return or throw, never trap; a token that parses must
///   re-encode its signing input consistently; and no token may be accepted against a key set whose
///   only key was never used to sign anything (no forgery from malformed input);
/// - as the claims of a token signed with a listed test key, so that the rules after the signature
///   check (times, lifetime, audience, revocation, the user) see every mutation: they must never
///   trap, and a token they accept must have revocable id and sane times, and be refused once its
///   `jti` is listed as revoked.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEmergencyToken(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let text = String(decoding: bytes, as: UTF8.self)
    _ = EmergencyToken.isCandidate(text)
    if let token = try? EmergencyToken.parse(text) {
        precondition(text.utf8.starts(with: token.signingInput))
    }
    let decision = Authenticator().review(token: text, snapshot: FuzzFixture.snapshot(FuzzFixture.access), now: FuzzFixture.now)
    precondition(!decision.isAuthenticated, "an unsigned input was accepted")

    let signed = FuzzFixture.sign(claims: Array(bytes))
    let verdict = Authenticator().review(token: signed, snapshot: FuzzFixture.snapshot(FuzzFixture.access), now: FuzzFixture.now)
    if verdict.isAuthenticated {
        let claims = (try? EmergencyToken.parse(signed))?.claims
        guard let claims else { preconditionFailure("accepted a token that does not parse") }
        precondition(EmergencyAccess.isRevocable(jti: claims.jti), "accepted an unrevocable jti")
        precondition([claims.iat, claims.nbf, claims.exp].allSatisfy(EmergencyAccess.acceptedTimes.contains), "accepted insane times")
        let revoked = FuzzFixture.access(revoked: [claims.jti])
        let again = Authenticator().review(token: signed, snapshot: FuzzFixture.snapshot(revoked), now: FuzzFixture.now)
        precondition(again.refusalReason == .emergencyRevoked, "an accepted token survived the revocation of its jti")
    }
    return 0
}

enum FuzzFixture {
    static let now = Timestamp(seconds: 1_800_000_000)
    /// A fixed test key that signs the mutated claims (kid "signed").
    static let signer = try! Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 7, count: 32))
    static let header = Base64URL.encode(Array(#"{"alg":"EdDSA","kid":"signed","typ":"JWT"}"#.utf8))

    /// RFC 8032 test 1's public key (kid "k1", whose private key signs nothing here) and the test key.
    static func access(revoked: [String] = []) -> EmergencyAccess {
        let signedKey = Base64URL.encode(signer.publicKey.rawRepresentation)
        let jwks =
            #"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},"#
            + #"{"kty":"OKP","crv":"Ed25519","kid":"signed","alg":"EdDSA","x":"\#(signedKey)"}]}"#
        var data: [String: [UInt8]] = ["jwks": Array(jwks.utf8), "audience": Array("aud".utf8), "max-ttl": Array("4h".utf8)]
        for jti in revoked { data[EmergencyAccess.revokedKeyPrefix + jti] = Array("fuzz".utf8) }
        return try! EmergencyAccess(secretData: data, version: "1")
    }

    static let access = access()

    static func snapshot(_ access: EmergencyAccess) -> RecordSnapshot {
        RecordSnapshot(
            tokens: [], users: [ClusterUserAttribute(metadata: ObjectMeta(name: "u-1"), groups: [], enabled: true)], hashSecrets: [],
            emergency: access)
    }

    static func sign(claims: [UInt8]) -> String {
        let input = header + "." + Base64URL.encode(claims)
        let signature = (try? signer.signature(for: Data(input.utf8))) ?? Data()
        return input + "." + Base64URL.encode(signature)
    }
}
