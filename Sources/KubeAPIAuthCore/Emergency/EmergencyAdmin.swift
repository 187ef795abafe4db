import Crypto
import CryptoExtras
import Foundation
import JWTKit
import KubeClient
import Logging
import RancherAuth

/// The platform team's side of emergency access (`kube-api-auth emergency …`): key pairs, the
/// Secret that lists their public halves, signed tokens, and revocations. Signing uses jwt-kit.
public enum EmergencyAdmin {
    public struct AdminError: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// A private signing key (Ed25519 or P-256), as kept in a PEM file.
    public struct SigningKey: Sendable {
        public let algorithm: EmergencyAccess.Algorithm
        private let ed25519: Curve25519.Signing.PrivateKey?
        private let p256: P256.Signing.PrivateKey?

        public static func generate(_ algorithm: EmergencyAccess.Algorithm) -> SigningKey {
            switch algorithm {
            case .eddsa: return SigningKey(algorithm: .eddsa, ed25519: Curve25519.Signing.PrivateKey(), p256: nil)
            case .es256: return SigningKey(algorithm: .es256, ed25519: nil, p256: P256.Signing.PrivateKey())
            }
        }

        /// Reads a PEM written by ``pemRepresentation`` (PKCS#8, as `openssl genpkey` writes too).
        public init(pem: String) throws(AdminError) {
            if let key = try? Curve25519.Signing.PrivateKey(pemRepresentation: pem) {
                self.init(algorithm: .eddsa, ed25519: key, p256: nil)
            } else if let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) {
                self.init(algorithm: .es256, ed25519: nil, p256: key)
            } else {
                throw AdminError("not an Ed25519 or P-256 private key in PEM form")
            }
        }

        private init(algorithm: EmergencyAccess.Algorithm, ed25519: Curve25519.Signing.PrivateKey?, p256: P256.Signing.PrivateKey?) {
            self.algorithm = algorithm
            self.ed25519 = ed25519
            self.p256 = p256
        }

        public var pemRepresentation: String {
            ed25519?.pemRepresentation ?? p256!.pemRepresentation
        }

        /// The public half as a JWK's members (without `kid` and `alg`).
        private var publicMembers: [String: String] {
            if let ed25519 {
                return ["kty": "OKP", "crv": "Ed25519", "x": Base64URL.encode(ed25519.publicKey.rawRepresentation)]
            }
            let point = Array(p256!.publicKey.x963Representation)  // 0x04 || x || y
            return ["kty": "EC", "crv": "P-256", "x": Base64URL.encode(point[1..<33]), "y": Base64URL.encode(point[33..<65])]
        }

        /// The RFC 7638 thumbprint of the public key: the same key always gets the same `kid`.
        public var kid: String {
            let members = publicMembers
            let canonical = "{" + members.keys.sorted().map { #""\#($0)":"\#(members[$0]!)""# }.joined(separator: ",") + "}"
            return Base64URL.encode(SHA256.hash(data: Data(canonical.utf8)))
        }

        /// The public JWK as it goes into the Secret's JWKS.
        public var publicJWK: [String: String] {
            var members = publicMembers
            members["kid"] = kid
            members["alg"] = algorithm.rawValue
            members["use"] = "sig"
            return members
        }

        /// Signs `claims` with jwt-kit; the header carries this key's `kid` and algorithm.
        func sign(_ claims: EmergencyToken.Claims) async throws -> String {
            let keys = JWTKeyCollection()
            let identifier = JWKIdentifier(string: kid)
            if let ed25519 {
                await keys.add(eddsa: EdDSA.PrivateKey(backing: ed25519), kid: identifier)
            } else if let p256 {
                await keys.add(ecdsa: try ES256PrivateKey(backing: p256), kid: identifier)
            }
            return try await keys.sign(claims, kid: identifier)
        }
    }

    /// The Secret manifest that turns emergency access on (public keys only).
    public static func secretManifest(
        name: String, namespace: String, keys: [[String: String]], audience: String, maxTTL: String
    ) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let jwks = String(decoding: try encoder.encode(["keys": keys]), as: UTF8.self)
        return """
            # Emergency access for kube-api-auth: the public keys that may sign emergency tokens. No
            # private key here. Revoke a token with `kube-api-auth emergency revoke JTI`.
            apiVersion: v1
            kind: Secret
            metadata:
              name: \(quoted(name))
              namespace: \(quoted(namespace))
            type: Opaque
            stringData:
              jwks: \(quoted(jwks))
              audience: \(quoted(audience))
              max-ttl: \(quoted(maxTTL))

            """
    }

    /// The issuing rules against the cluster's emergency settings: the lifetime within its maximum,
    /// the key listed in its `jwks` with the same algorithm, the audience its own. Returns the
    /// audience to sign for. Without the cluster's settings (`nil`: they could not be read) nothing
    /// can be checked, and the audience is the one asked for, else the default.
    public static func checkIssuance(
        key: SigningKey, lifetime: Int64, audience: String?, cluster: EmergencyAccess?
    ) throws(AdminError) -> String {
        guard let cluster else { return audience ?? "kube-api-auth" }
        guard lifetime <= cluster.maxLifetime else {
            throw AdminError("--ttl \(lifetime / 60) minutes is longer than the cluster allows (max-ttl \(cluster.maxLifetime / 60) minutes)")
        }
        guard let listed = cluster.keys[key.kid], listed.algorithm == key.algorithm else {
            throw AdminError("the key of --private-key (kid \(key.kid)) is not listed in the Secret's jwks")
        }
        if let audience, audience != cluster.audience {
            throw AdminError("--audience \(audience) is not the cluster's (\(cluster.audience))")
        }
        return cluster.audience
    }

    /// Issues a token for `user`, valid from `now` for `lifetime` seconds.
    public static func issue(
        key: SigningKey, user: String, lifetime: Int64, reason: String, audience: String, now: Timestamp
    ) async throws -> (token: String, jti: String) {
        let jti = UUID().uuidString.lowercased()
        let claims = EmergencyToken.Claims(
            iss: EmergencyAccess.issuer, aud: [audience], sub: user, iat: now.seconds, nbf: now.seconds, exp: now.seconds + lifetime,
            jti: jti, reason: reason)
        return (try await key.sign(claims), jti)
    }

    /// The merge patch that lists `jti` as revoked (an added key: it cannot conflict with another).
    public static func revocationPatch(jti: String, note: String) throws(AdminError) -> String {
        guard EmergencyAccess.isRevocable(jti: jti) else {
            throw AdminError("\"\(jti.prefix(64))\" is not a token id (letters, digits, '-', '_' and '.'; at most 245)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let patch = ["stringData": [EmergencyAccess.revokedKeyPrefix + jti: note]]
        return String(decoding: (try? encoder.encode(patch)) ?? Data(), as: UTF8.self)
    }

    /// Applies `patch` to the Secret through the cluster of `kubeconfig` (the in-cluster account when nil).
    public static func apply(patch: String, secret: String, namespace: String, kubeconfig: String?, logger: Logger) async throws {
        let client = try makeClient(kubeconfig: kubeconfig, logger: logger)
        do {
            _ = try await client.mergePatch(.secrets, namespace: namespace, name: secret, patch: Data(patch.utf8))
        } catch {
            try? await client.shutdown()
            throw AdminError("cannot patch Secret \(namespace)/\(secret): \(error)")
        }
        try? await client.shutdown()
    }

    /// The cluster's emergency settings, read through `kubeconfig`; `nil` when the Secret does not exist.
    public static func read(secret: String, namespace: String, kubeconfig: String?, logger: Logger) async throws -> EmergencyAccess? {
        let client = try makeClient(kubeconfig: kubeconfig, logger: logger)
        let fetched: Result<Data?, AdminError>
        do {
            fetched = .success(try await client.get(.secrets, namespace: namespace, name: secret))
        } catch  where error.isNotFound {
            fetched = .success(nil)
        } catch {
            fetched = .failure(AdminError("cannot read Secret \(namespace)/\(secret): \(error)"))
        }
        try? await client.shutdown()
        guard let data = try fetched.get() else { return nil }
        let object = try JSONDecoder().decode(OpaqueSecret.self, from: data)
        do {
            return try EmergencyAccess(secret: object, fallbackVersion: "")
        } catch {
            throw AdminError("Secret \(namespace)/\(secret) cannot be used: \(error.description)")
        }
    }

    private static func makeClient(kubeconfig: String?, logger: Logger) throws -> KubeClient {
        do {
            let configuration = try kubeconfig.map { try KubeConfig.load(path: $0) } ?? KubeConfig.inCluster()
            return try KubeClient(configuration: configuration, logger: logger)
        } catch {
            throw AdminError("\(error)")
        }
    }

    private static func quoted(_ value: String) -> String {
        var bytes: [UInt8] = []
        JSONWriter.appendString(value, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
