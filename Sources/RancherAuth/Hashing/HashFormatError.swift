/// Why a stored hash string cannot be used. Descriptions never quote the hash itself: hashes are
/// credentials-equivalent for offline guessing and must not reach logs.
public enum HashFormatError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Fewer than three `:`-separated fields (`not-a-valid-hash-format`, empty).
    case formatInvalid
    /// The version field is not a Go `Atoi` integer (`$A:…`, `$$3:…`).
    case versionNotInteger
    /// A version with no hasher (`$9:…`, `$0:…`).
    case unknownVersion(Int64)
    /// The format-specific layout is wrong (missing `$`, wrong field count, bad scrypt fields).
    case malformed(String)
    /// `$3` with a variation other than 1.
    case unknownVariation(Int64)
    /// A base64 or hex field does not decode.
    case badEncoding(field: String)
    /// The digest or key field decodes to nothing; Go treats this as a mismatch.
    case emptyDigest
    /// scrypt parameters that Go's scrypt rejects, or that would exceed the memory guard.
    case invalidParameters(String)

    public var description: String {
        switch self {
        case .formatInvalid: return "hash format invalid"
        case .versionNotInteger: return "unable to convert hash version"
        case .unknownVersion(let version): return "invalid version \(version), no hasher exists for that version"
        case .malformed(let detail): return "malformed hash: \(detail)"
        case .unknownVariation(let variation): return "sha3 variation \(variation) is not a known variation"
        case .badEncoding(let field): return "hash field \(field) is not valid encoding"
        case .emptyDigest: return "hash digest is empty"
        case .invalidParameters(let detail): return "scrypt parameters rejected: \(detail)"
        }
    }
}

/// The hash families Rancher has used, named after their version prefix.
public enum HashAlgorithm: String, Hashable, Sendable, CaseIterable {
    /// `$1`, Rancher ≤ 2.7.6 cluster auth tokens: tens of milliseconds and 32 MiB per check.
    case scrypt
    /// `$2`, legacy v3 token hashing (Rancher 2.6–2.7.6).
    case sha256
    /// `$3`, the current format.
    case sha3
}
