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
enum ContentVersion {
    static func of(_ fields: [String]) -> String {
        var hasher = SHA256()
        for field in fields {
            hasher.update(data: Array(field.utf8))
            hasher.update(data: [0])
        }
        // 88 bits as 15 base64url characters: a Swift small string, stored inline in the record
        // (no heap allocation per record; 100,000 tokens saved ~6 MB over 32 hex digits).
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var bits = hasher.finalize().prefix(11).reduce((high: UInt64(0), low: UInt64(0))) { value, byte in
            (high: (value.high << 8) | (value.low >> 56), low: (value.low << 8) | UInt64(byte))
        }
        var characters = [UInt8](repeating: 0, count: 15)
        for index in (0..<15).reversed() {
            characters[index] = alphabet[Int(bits.low & 63)]
            bits = (high: bits.high >> 6, low: (bits.low >> 6) | (bits.high << 58))
        }
        return String(decoding: characters, as: UTF8.self)
    }
}
