import Crypto

/// The part of Kubernetes `metadata` the service uses.
public struct ObjectMeta: Codable, Sendable, Hashable {
    public var name: String
    public var namespace: String?
    public var resourceVersion: String?

    public init(name: String, namespace: String? = nil, resourceVersion: String? = nil) {
        self.name = name
        self.namespace = namespace
        self.resourceVersion = resourceVersion
    }

    private enum CodingKeys: String, CodingKey { case name, namespace, resourceVersion }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.name = try container.decodeIfPresent(String.self, forKey: .name) ?? ""
        self.namespace = try container.decodeIfPresent(String.self, forKey: .namespace)
        self.resourceVersion = try container.decodeIfPresent(String.self, forKey: .resourceVersion)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encodeIfPresent(namespace, forKey: .namespace)
        try container.encodeIfPresent(resourceVersion, forKey: .resourceVersion)
    }
}

/// `apiVersion`, `kind` and `metadata` of any manifest: enough to decide how to decode the rest.
public struct ObjectHeader: Decodable, Sendable {
    public var apiVersion: String
    public var kind: String
    public var metadata: ObjectMeta?

    private enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata }

    public init(apiVersion: String, kind: String, metadata: ObjectMeta?) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.metadata = metadata
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion) ?? ""
        self.kind = try container.decodeIfPresent(String.self, forKey: .kind) ?? ""
        self.metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata)
    }
}

/// A field held a value the Go service could not have decoded either (e.g. `enabled: "true"`):
/// such an object is treated as absent, which fails closed.
public struct RecordFieldError: Error, CustomStringConvertible, Sendable {
    public let field: String
    public let problem: String

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { "field \(field): \(problem)" }
}

/// A short digest of record fields, for comparing record contents without keeping them.
package enum ContentVersion {
    package static func of(_ fields: [String]) -> String {
        digest(of: fields).text
    }

    /// The same digest as 88 bits in two integers (a token's row keeps it in 12 bytes).
    package static func digest(of fields: [String]) -> ContentDigest {
        var hasher = SHA256()
        for field in fields {
            hasher.update(data: Array(field.utf8))
            hasher.update(data: [0])
        }
        return ContentDigest(hasher.finalize().prefix(11))
    }
}

/// 88 bits of a SHA-256, written as 15 unpadded base64 characters: a Swift small string, stored
/// inline (no heap allocation per record, unlike 32 hex digits).
package struct ContentDigest: Hashable, Sendable {
    package let high: UInt64
    package let low: UInt32

    init(high: UInt64, low: UInt32) {
        self.high = high
        self.low = low
    }

    /// From the first 11 bytes of `bytes` (big-endian: the text is the base64 of those bytes).
    init(_ bytes: some Sequence<UInt8>) {
        var high: UInt64 = 0
        var low: UInt32 = 0
        for (index, byte) in bytes.prefix(11).enumerated() {
            if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt32(byte) }
        }
        self.init(high: high, low: low)
    }

    /// Rendered when asked for (once per review) without a heap allocation: the 88 bits, then two
    /// zero bits, as 15 characters of 6 bits (what `GoBase64.encode` writes for the 11 bytes).
    package var text: String {
        String(unsafeUninitializedCapacity: 15) { characters in
            for index in 0..<15 {
                // Bits 6·index ..< 6·index + 6 of high (64 bits), then low's 24 bits, then two zeros.
                let start = 6 * index
                let value: UInt64
                if start + 6 <= 64 {
                    value = high >> UInt64(58 - start)
                } else if start < 64 {
                    value = high << UInt64(start + 6 - 64) | UInt64(low) >> UInt64(24 - (start + 6 - 64))
                } else {
                    let offset = start - 64
                    value = offset + 6 <= 24 ? UInt64(low) >> UInt64(18 - offset) : UInt64(low) << UInt64(offset + 6 - 24)
                }
                characters[index] = ContentDigest.alphabet[Int(value & 0x3F)]
            }
            return 15
        }
    }

    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
}
