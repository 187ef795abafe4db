import Crypto

/// A parsed Rancher token hash (`$3` SHA3-512, `$2` SHA-256 or `$1` scrypt), ready to verify secrets.
///
/// Parsing follows Rancher's Go hashers exactly (spec §4), so that every stored hash that verifies
/// in the Go service verifies here and every one that fails there fails here. Records are parsed
/// once when they change; the review path only calls ``verify(secret:)``.
public struct StoredHash: Sendable, Hashable {
    enum Material: Sendable, Hashable {
        case sha3(SaltedDigest)
        case sha256(SaltedDigest)
        /// The digest is the derived key; its length is the key length to derive.
        case scrypt(ScryptParameters, SaltedDigest)
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
        return .sha3(SaltedDigest(salt: salt, digest: digest))
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
        return .sha256(SaltedDigest(salt: salt, digest: digest))
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
        case .sha3(let stored):
            var hasher = SHA3_512()
            stored.withSalt { hasher.update(bufferPointer: $0) }
            hasher.update(bufferPointer: secret)
            return hasher.finalize().withUnsafeBytes { stored.digestEquals($0) }
        case .sha256(let stored):
            var hasher = SHA256()
            stored.withSalt { hasher.update(bufferPointer: $0) }
            hasher.update(bufferPointer: secret)
            return hasher.finalize().withUnsafeBytes { stored.digestEquals($0) }
        case .scrypt(let parameters, let stored):
            guard
                let derived = Scrypt.deriveKey(
                    password: secret, salt: Array(stored.salt), parameters: parameters, keyLength: stored.digest.count)
            else { return false }
            return derived.withUnsafeBytes { stored.digestEquals($0) }
        }
    }

    /// The hash in Rancher's canonical layout (what Rancher itself writes). It parses back to an
    /// equal ``StoredHash``, so it verifies exactly like the text it was parsed from, which may
    /// have used one of the layouts Go's parsers also accept (spaces, signs, unused bits).
    public var canonicalText: String {
        switch material {
        case .sha3(let stored):
            return "$3:1:\(GoBase64.encode(stored.salt)):\(GoBase64.encode(stored.digest))"
        case .sha256(let stored):
            return "$2:\(GoBase64.encode(stored.salt)):\(GoBase64.encode(stored.digest))"
        case .scrypt(let parameters, let stored):
            return "$1:\(Hex.encode(stored.salt)):\(parameters.log2N):\(parameters.r):\(parameters.p):\(GoBase64.encode(stored.digest))"
        }
    }
}

/// A salt and a digest in one allocation: a synced namespace holds 100,000 of them.
struct SaltedDigest: Sendable, Hashable {
    private let bytes: [UInt8]
    private let saltCount: Int

    init(salt: [UInt8], digest: [UInt8]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(salt.count + digest.count)
        bytes += salt
        bytes += digest
        self.bytes = bytes
        self.saltCount = salt.count
    }

    /// From salt and digest already side by side (as a ``RecordTable`` stores them).
    init(saltThenDigest: UnsafeRawBufferPointer, saltCount: Int) {
        self.bytes = Array(saltThenDigest)
        self.saltCount = min(max(saltCount, 0), saltThenDigest.count)
    }

    var salt: ArraySlice<UInt8> { bytes[..<saltCount] }
    var digest: ArraySlice<UInt8> { bytes[saltCount...] }

    func withSalt<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[..<saltCount])) }
    }

    /// Compares `candidate` with the digest in constant time (a different length is a mismatch).
    func digestEquals(_ candidate: UnsafeRawBufferPointer) -> Bool {
        bytes.withUnsafeBytes { constantTimeEquals(candidate, UnsafeRawBufferPointer(rebasing: $0[saltCount...])) }
    }
}

/// Lower-case hexadecimal, as Go's `%x` writes a byte slice.
enum Hex {
    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// Compares in time that depends only on the lengths, never on where the bytes differ.
@inline(__always)
func constantTimeEquals(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeRawBufferPointer) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for index in 0..<rhs.count { difference |= lhs[index] ^ rhs[index] }
    return difference == 0
}
