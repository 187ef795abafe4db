/// scrypt parameters as stored in a `$1` hash (N = 2ⁿ).
public struct ScryptParameters: Sendable, Hashable {
    public var log2N: UInt64
    public var r: Int64
    public var p: Int64

    public init(log2N: UInt64, r: Int64, p: Int64) {
        self.log2N = log2N
        self.r = r
        self.p = p
    }

    /// Rancher's parameters for new scrypt hashes: N = 2¹⁵, r = 8, p = 1.
    public static let rancher = ScryptParameters(log2N: 15, r: 8, p: 1)

    /// Memory one derivation needs (OpenSSL's accounting: 128·r·(N + p + 2) bytes).
    var memoryBytes: UInt64? {
        let n: UInt64 = 1 << log2N
        let (withP, o1) = n.addingReportingOverflow(UInt64(p) + 2)
        let (perR, o2) = withP.multipliedReportingOverflow(by: 128)
        let (total, o3) = perR.multipliedReportingOverflow(by: UInt64(r))
        return o1 || o2 || o3 ? nil : total
    }
}

/// The `$1` layout, read the way Rancher's Go code reads it: `fmt.Sscanf(hash, "$%d:%x:%d:%d:%d:%s", …)`
/// into an unsigned version, a byte-slice salt, an unsigned n, signed r and p, and a string key.
///
/// That means: a literal `$`; numbers may be preceded by spaces (a newline is an error); the version
/// and n take no sign; the salt is read in hex byte pairs up to the first non-hex character (an
/// odd digit count is an error); the key runs to the first whitespace and anything after it is
/// ignored; the key is unpadded base64 and its length is the derived-key length.
enum ScryptHashFormat {
    /// scrypt derivations above this are refused: the parameters come from stored data and Rancher
    /// only ever wrote N = 2¹⁵, r = 8 (32 MiB).
    static let maxMemoryBytes: UInt64 = 64 << 20

    static func parse(_ bytes: [UInt8]) throws(HashFormatError) -> StoredHash.Material {
        var scanner = SscanfScanner(bytes: bytes)
        try scanner.literal(UInt8(ascii: "$"))
        let version = try scanner.unsignedDecimal()
        guard version == 1 else { throw .malformed("scrypt version must be 1") }
        try scanner.literal(UInt8(ascii: ":"))
        let salt = try scanner.hexBytes()
        try scanner.literal(UInt8(ascii: ":"))
        let log2N = try scanner.unsignedDecimal()
        try scanner.literal(UInt8(ascii: ":"))
        let r = try scanner.signedDecimal()
        try scanner.literal(UInt8(ascii: ":"))
        let p = try scanner.signedDecimal()
        try scanner.literal(UInt8(ascii: ":"))
        let keyText = try scanner.nonSpaceToken()
        let key: [UInt8]
        do {
            key = try GoBase64.decode(keyText)
        } catch {
            throw .badEncoding(field: "key")
        }
        guard !key.isEmpty else { throw .emptyDigest }
        let parameters = ScryptParameters(log2N: log2N, r: r, p: p)
        try validate(parameters)
        return .scrypt(parameters, SaltedDigest(salt: salt, digest: key))
    }

    /// The checks of Go's `scrypt.Key` (N > 1 and a power of two; r·p < 2³⁰; no overflow), plus
    /// positive r and p (Go divides by p) and the memory guard.
    static func validate(_ parameters: ScryptParameters) throws(HashFormatError) {
        guard parameters.log2N >= 1, parameters.log2N <= 62 else { throw .invalidParameters("N must be > 1 and a power of 2") }
        guard parameters.r >= 1, parameters.p >= 1 else { throw .invalidParameters("r and p must be positive") }
        let (rp, overflow) = parameters.r.multipliedReportingOverflow(by: parameters.p)
        guard !overflow, rp < 1 << 30 else { throw .invalidParameters("parameters are too large") }
        guard let memory = parameters.memoryBytes, memory <= maxMemoryBytes else {
            throw .invalidParameters("derivation would need more than \(maxMemoryBytes >> 20) MiB")
        }
    }
}

/// The subset of Go's `fmt.Sscanf` scanning rules that the scrypt format uses.
private struct SscanfScanner {
    let bytes: [UInt8]
    var index = 0

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0B || byte == 0x0C || byte == 0x0D
    }

    /// A non-space format character must match the input exactly.
    mutating func literal(_ expected: UInt8) throws(HashFormatError) {
        guard index < bytes.count, bytes[index] == expected else {
            throw .malformed("scrypt hash does not match $%d:%x:%d:%d:%d:%s")
        }
        index += 1
    }

    /// Verbs skip spaces; in `Sscanf` a newline is not a space but an error.
    private mutating func skipSpace() throws(HashFormatError) {
        while index < bytes.count {
            if bytes[index] == 0x0A { throw .malformed("unexpected newline in scrypt hash") }
            guard Self.isSpace(bytes[index]) else { return }
            index += 1
        }
        throw .malformed("unexpected end of scrypt hash")
    }

    private mutating func digits() throws(HashFormatError) -> ArraySlice<UInt8> {
        let start = index
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
        guard index > start else { throw .malformed("expected integer in scrypt hash") }
        return bytes[start..<index]
    }

    /// `%d` into an unsigned integer: no sign.
    mutating func unsignedDecimal() throws(HashFormatError) -> UInt64 {
        try skipSpace()
        let text = try digits()
        guard let value = GoStrconv.parseInt(text), value >= 0 else { throw .malformed("integer overflow in scrypt hash") }
        return UInt64(value)
    }

    /// `%d` into an `int`: an optional sign, then digits.
    mutating func signedDecimal() throws(HashFormatError) -> Int64 {
        try skipSpace()
        let start = index
        if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
        _ = try digits()
        guard let value = GoStrconv.parseInt(bytes[start..<index]) else { throw .malformed("integer overflow in scrypt hash") }
        return value
    }

    /// `%x` into `[]byte`: hex pairs until a non-hex character.
    mutating func hexBytes() throws(HashFormatError) -> [UInt8] {
        try skipSpace()
        var output: [UInt8] = []
        while index < bytes.count, let high = ASCII.hexValue(bytes[index]) {
            index += 1
            guard index < bytes.count else { throw .malformed("unexpected end of scrypt salt") }
            guard let low = ASCII.hexValue(bytes[index]) else { throw .badEncoding(field: "salt") }
            index += 1
            output.append(high << 4 | low)
        }
        guard !output.isEmpty else { throw .badEncoding(field: "salt") }
        return output
    }

    /// `%s`: skips spaces, then reads up to the next space; nothing left is an EOF error.
    mutating func nonSpaceToken() throws(HashFormatError) -> ArraySlice<UInt8> {
        try skipSpace()
        let start = index
        while index < bytes.count, !Self.isSpace(bytes[index]), bytes[index] != 0x0A { index += 1 }
        return bytes[start..<index]
    }
}
