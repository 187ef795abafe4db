import Crypto

/// Creates hashes in Rancher's formats (for `kube-api-auth hash` and `token create`).
public enum HashCreation {
    public struct DerivationFailed: Error, CustomStringConvertible {
        public var description: String { "scrypt derivation failed in libcrypto" }
    }

    /// Rancher's salt length for every format.
    public static let saltLength = 8

    /// Hashes `secret` with a fresh random salt.
    public static func hash(secret: String, algorithm: HashAlgorithm = .sha3) throws(DerivationFailed) -> String {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<saltLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return try hash(secret: secret, algorithm: algorithm, salt: salt)
    }

    /// Hashes `secret` with the given salt (deterministic; for tests and reproducible fixtures).
    public static func hash(secret: String, algorithm: HashAlgorithm, salt: [UInt8]) throws(DerivationFailed) -> String {
        let secretBytes = Array(secret.utf8)
        switch algorithm {
        case .sha3:
            var hasher = SHA3_512()
            hasher.update(data: salt)
            hasher.update(data: secretBytes)
            return "$3:1:\(GoBase64.encode(salt)):\(GoBase64.encode(hasher.finalize()))"
        case .sha256:
            var hasher = SHA256()
            hasher.update(data: salt)
            hasher.update(data: secretBytes)
            return "$2:\(GoBase64.encode(salt)):\(GoBase64.encode(hasher.finalize()))"
        case .scrypt:
            let parameters = ScryptParameters.rancher
            let derived = secretBytes.withUnsafeBytes {
                Scrypt.deriveKey(password: $0, salt: salt, parameters: parameters, keyLength: 64)
            }
            guard let key = derived, !salt.isEmpty else { throw DerivationFailed() }
            return "$1:\(Hex.encode(salt)):\(parameters.log2N):\(parameters.r):\(parameters.p):\(GoBase64.encode(key))"
        }
    }
}
