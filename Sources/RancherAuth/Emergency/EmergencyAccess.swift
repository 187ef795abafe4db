import Crypto
import Foundation
import JWTKit

/// The emergency-access settings of one cluster: the public keys that may sign emergency tokens,
/// the audience they must name, their longest lifetime and the revoked token ids. Read from the
/// Secret `kube-api-auth-emergency` (DESIGN.md, "Emergency access"); no Secret, no emergency path.
///
/// The Secret's keys:
/// - `jwks`: a JSON Web Key Set of public keys, each with `kid` and `alg` (`EdDSA` with an Ed25519
///   `OKP` key, or `ES256` with a P-256 `EC` key);
/// - `audience`: what a token's `aud` must be;
/// - `max-ttl`: the longest allowed `exp - iat`, as a duration (`4h`, `90m`);
/// - `revoked.<jti>`: one key per revoked token id (the value is a note: when and why).
public struct EmergencyAccess: Sendable {
    /// Every emergency token's `iss`.
    public static let issuer = "kube-api-auth-emergency"
    /// The Secret's default name (`--emergency-secret` renames it).
    public static let defaultSecretName = "kube-api-auth-emergency"
    /// Clock skew allowed on `nbf`, `exp` and `iat`, in seconds.
    public static let leeway: Int64 = 60
    /// The prefix of the Secret keys that list revoked token ids.
    public static let revokedKeyPrefix = "revoked."

    /// The times (`iat`, `nbf`, `exp`, Unix seconds) a token may name: 2000-01-01 to 2200-01-01.
    /// A token naming another is malformed and refused before any arithmetic on its claims, so no
    /// value, signed or not, can overflow (`exp + leeway`, `exp - iat`).
    public static let acceptedTimes: ClosedRange<Int64> = 946_684_800...7_258_118_400

    /// Whether `jti` can be revoked: `revoked.<jti>` must be a Secret data key (`[-._a-zA-Z0-9]+`,
    /// at most 253 bytes). A token whose id could not be listed there is refused, so every
    /// accepted token can be revoked.
    public static func isRevocable(jti: String) -> Bool {
        !jti.isEmpty && revokedKeyPrefix.utf8.count + jti.utf8.count <= 253
            && jti.utf8.allSatisfy { EmergencyToken.isBase64URL($0) || $0 == UInt8(ascii: ".") }
    }

    /// The algorithm a key declares; a token must use exactly its key's algorithm.
    public enum Algorithm: String, Sendable, CaseIterable {
        case eddsa = "EdDSA"
        case es256 = "ES256"
    }

    /// One public key.
    public struct Key: Sendable {
        public let kid: String
        public let algorithm: Algorithm
        private let backing: Backing

        private enum Backing: Sendable {
            case ed25519(Curve25519.Signing.PublicKey)
            case p256(P256.Signing.PublicKey)
        }

        init(kid: String, ed25519: Curve25519.Signing.PublicKey) {
            self.kid = kid
            self.algorithm = .eddsa
            self.backing = .ed25519(ed25519)
        }

        init(kid: String, p256: P256.Signing.PublicKey) {
            self.kid = kid
            self.algorithm = .es256
            self.backing = .p256(p256)
        }

        /// The public key's bytes (Ed25519 raw, P-256 X9.63): what an open session was verified with.
        public var publicKeyBytes: [UInt8] {
            switch backing {
            case .ed25519(let key): return Array(key.rawRepresentation)
            case .p256(let key): return Array(key.x963Representation)
            }
        }

        /// Whether `signature` (the JWS signature bytes) signs `input` (`header.payload`).
        public func verify(signature: [UInt8], input: [UInt8]) -> Bool {
            switch backing {
            case .ed25519(let key):
                return key.isValidSignature(signature, for: input)
            case .p256(let key):
                // JWS ES256 signatures are r || s, 64 bytes (RFC 7518 §3.4), not DER.
                guard signature.count == 64, let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else {
                    return false
                }
                return key.isValidSignature(parsed, for: input)
            }
        }
    }

    public let keys: [String: Key]
    public let audience: String
    /// The longest allowed `exp - iat`, in seconds.
    public let maxLifetime: Int64
    public let revoked: Set<String>
    /// The Secret's resourceVersion (or a content digest), for the verified cache.
    public let version: String
    /// The Secret's entries as read (public keys and settings only), for the snapshot file.
    public let entries: [String: [UInt8]]

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Reads the Secret's decoded data.
    public init(secretData data: [String: [UInt8]], version: String) throws(ParseError) {
        guard let jwksBytes = data["jwks"], !jwksBytes.isEmpty else { throw ParseError(description: "no jwks entry") }
        let jwks: JWKS
        do {
            jwks = try JSONDecoder().decode(JWKS.self, from: Data(jwksBytes))
        } catch {
            throw ParseError(description: "jwks is not a JSON Web Key Set")
        }
        var keys: [String: Key] = [:]
        for (index, jwk) in jwks.keys.enumerated() {
            guard let kid = jwk.keyIdentifier?.string, !kid.isEmpty else { throw ParseError(description: "key \(index) has no kid") }
            guard keys[kid] == nil else { throw ParseError(description: "kid \(kid) is listed twice") }
            keys[kid] = try Self.key(jwk, kid: kid)
        }
        guard !keys.isEmpty else { throw ParseError(description: "jwks holds no key") }
        guard let audience = data["audience"].map({ String(decoding: $0, as: UTF8.self) }), !audience.isEmpty else {
            throw ParseError(description: "no audience entry")
        }
        guard let ttlText = data["max-ttl"].map({ String(decoding: $0, as: UTF8.self) }),
            case .seconds(let maxLifetime) = TokenLifetime(parsing: ttlText.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            throw ParseError(description: "max-ttl must be a duration such as 4h or 90m")
        }
        self.keys = keys
        self.audience = audience
        self.maxLifetime = maxLifetime
        self.revoked = Set(data.keys.filter { $0.hasPrefix(Self.revokedKeyPrefix) }.map { String($0.dropFirst(Self.revokedKeyPrefix.count)) })
        self.version = version
        self.entries = data
    }

    /// A listed public key, with the algorithm it declares (never one chosen by a token).
    private static func key(_ jwk: JWK, kid: String) throws(ParseError) -> Key {
        guard jwk.privateExponent == nil else { throw ParseError(description: "key \(kid) holds private material") }
        switch jwk.algorithm?.rawValue {
        case Algorithm.eddsa.rawValue:
            guard jwk.keyType == .octetKeyPair, jwk.curve == .eddsa(.ed25519), let x = jwk.x,
                let key = try? EdDSA.PublicKey(x: x, curve: .ed25519),
                let raw = try? Curve25519.Signing.PublicKey(rawRepresentation: key.rawRepresentation)
            else { throw ParseError(description: "key \(kid) is not a usable Ed25519 public key") }
            return Key(kid: kid, ed25519: raw)
        case Algorithm.es256.rawValue:
            guard jwk.keyType == .ecdsa, jwk.curve == .ecdsa(.p256), let x = jwk.x, let y = jwk.y,
                let key = try? ES256PublicKey(parameters: (x: x, y: y)),
                let p256 = try? P256.Signing.PublicKey(pemRepresentation: key.pemRepresentation)
            else { throw ParseError(description: "key \(kid) is not a usable P-256 public key") }
            return Key(kid: kid, p256: p256)
        default:
            throw ParseError(description: "key \(kid) must declare alg EdDSA or ES256")
        }
    }
}
