import FuzzMain
import RancherAuth

/// Any bytes as an emergency token: parsing must return or throw, never trap; a token that parses
/// must re-encode its signing input consistently; and no token may be accepted against a key set
/// whose only key was never used to sign anything (no forgery from malformed input).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEmergencyToken(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = EmergencyToken.isCandidate(text)
    if let token = try? EmergencyToken.parse(text) {
        precondition(text.utf8.starts(with: token.signingInput))
    }
    let snapshot = RecordSnapshot(
        tokens: [], users: [ClusterUserAttribute(metadata: ObjectMeta(name: "u-1"), groups: [], enabled: true)], hashSecrets: [],
        emergency: FuzzFixture.access)
    let decision = Authenticator().review(token: text, snapshot: snapshot, now: Timestamp(seconds: 1_800_000_000))
    precondition(!decision.isAuthenticated, "an unsigned input was accepted")
    return 0
}

enum FuzzFixture {
    /// One Ed25519 public key (RFC 8032 test 1's) whose private key signs nothing here.
    static let access: EmergencyAccess = {
        let jwks = #"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#
        return try! EmergencyAccess(
            secretData: ["jwks": Array(jwks.utf8), "audience": Array("aud".utf8), "max-ttl": Array("4h".utf8)], version: "1")
    }()
}
