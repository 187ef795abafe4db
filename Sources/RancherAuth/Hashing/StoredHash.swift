import Crypto

/// A parsed Rancher token hash (`$3` SHA3-512, `$2` SHA-256 or `$1` scrypt), ready to verify secrets.
///
/// Parsing follows Rancher's Go hashers exactly (spec §4), so that every stored hash that verifies
/// in the Go service verifies here and every one that fails there fails here. Records are parsed
/// once when they change; the review path only calls ``verify(secret:)``.
public struct StoredHash: Sendable, Hashable {
    enum Material: Sendable, Hashable {
        case sha3(salt: [UInt8], digest: [UInt8])
        case sha256(salt: [UInt8], digest: [UInt8])
        case scrypt(ScryptParameters, salt: [UInt8], key: [UInt8])
    }

    let material: Material

    public var algorithm: HashAlgorithm {
        switch material {
        case .sha3: return .sha3
        case .sha256: return .sha256
        case .scrypt: return .scrypt
        }
    }

    /// True when a verification costs far more than a request should spend on an event loop.
    public var isExpensive: Bool { algorithm == .scrypt }

    /// Parses `text` with Rancher's version dispatch (`GetHasherForHash`) and that hasher's own rules.
    public static func parse(_ text: some StringProtocol) -> Result<StoredHash, HashFormatError> {
        let bytes = Array(text.utf8)
        do {
            return .success(try parse(bytes: bytes))
        } catch {
            return .failure(error)
        }
    }

    static func parse(bytes: [UInt8]) throws(HashFormatError) -> StoredHash {
        var body = bytes[...]
        if body.first == UInt8(ascii: "$") { body = body.dropFirst() }
        let fields = body.split(separator: UInt8(ascii: ":"), maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3 else { throw .formatInvalid }
        guard let version = GoStrconv.parseInt(fields[0]) else { throw .versionNotInteger }
        switch version {
        case 1: return StoredHash(material: try ScryptHashFormat.parse(bytes))
        case 2: return StoredHash(material: try parseSHA256(bytes))
        case 3: return StoredHash(material: try parseSHA3(bytes))
        default: throw .unknownVersion(version)
        }
    }

    /// `$3:1:<b64 salt>:<b64 digest>`: a leading `$`, exactly four fields, variation 1.
    private static func parseSHA3(_ bytes: [UInt8]) throws(HashFormatError) -> Material {
        guard bytes.first == UInt8(ascii: "$") else { throw .malformed("sha3 hash must start with $") }
        let fields = bytes.dropFirst().split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard fields.count == 4 else { throw .malformed("sha3 hash must have 4 fields") }
        guard GoStrconv.parseInt(fields[0]) == 3 else { throw .versionNotInteger }
        guard let variation = GoStrconv.parseInt(fields[1]) else { throw .malformed("sha3 variation is not an integer") }
        guard variation == 1 else { throw .unknownVariation(variation) }
        let digest = try decodeBase64(fields[3], field: "digest")
        guard !digest.isEmpty else { throw .emptyDigest }
        let salt = try decodeBase64(fields[2], field: "salt")
        return .sha3(salt: salt, digest: digest)
    }

    /// `$2:<b64 salt>:<b64 digest>`: a leading `$`, split into at most three fields, so a further
    /// `:` lands in the digest and fails to decode, as in Go.
    private static func parseSHA256(_ bytes: [UInt8]) throws(HashFormatError) -> Material {
        guard bytes.first == UInt8(ascii: "$") else { throw .malformed("sha256 hash must start with $") }
        let fields = bytes.dropFirst().split(
            separator: UInt8(ascii: ":"), maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3 else { throw .malformed("sha256 hash must have 3 fields") }
        guard GoStrconv.parseInt(fields[0]) == 2 else { throw .versionNotInteger }
        let digest = try decodeBase64(fields[2], field: "digest")
        guard !digest.isEmpty else { throw .emptyDigest }
        let salt = try decodeBase64(fields[1], field: "salt")
        return .sha256(salt: salt, digest: digest)
    }

    private static func decodeBase64(_ field: ArraySlice<UInt8>, field name: String) throws(HashFormatError) -> [UInt8] {
        do {
            return try GoBase64.decode(field)
        } catch {
            throw .badEncoding(field: name)
        }
    }

    /// Checks `secret` (the part of the bearer token after the first `:`) against this hash in
    /// constant time. A digest of another length is a plain mismatch.
    public func verify(secret: Substring) -> Bool {
        var secret = secret
        return secret.withUTF8 { verify(secretBytes: UnsafeRawBufferPointer($0)) }
    }

    public func verify(secretBytes secret: UnsafeRawBufferPointer) -> Bool {
        switch material {
        case .sha3(let salt, let digest):
            var hasher = SHA3_512()
            hasher.update(data: salt)
            hasher.update(bufferPointer: secret)
            return hasher.finalize().withUnsafeBytes { constantTimeEquals($0, digest) }
        case .sha256(let salt, let digest):
            var hasher = SHA256()
            hasher.update(data: salt)
            hasher.update(bufferPointer: secret)
            return hasher.finalize().withUnsafeBytes { constantTimeEquals($0, digest) }
        case .scrypt(let parameters, let salt, let key):
            guard let derived = Scrypt.deriveKey(
                password: secret, salt: salt, parameters: parameters, keyLength: key.count)
            else { return false }
            return derived.withUnsafeBytes { constantTimeEquals($0, key) }
        }
    }
}

/// Compares in time that depends only on the lengths, never on where the bytes differ.
@inline(__always)
func constantTimeEquals(_ lhs: UnsafeRawBufferPointer, _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for index in 0..<rhs.count { difference |= lhs[index] ^ rhs[index] }
    return difference == 0
}
