/// `ClusterAuthToken` (cluster.cattle.io/v3): the downstream mirror of one Rancher token.
/// Fields are top-level, as Rancher writes them; time fields are parsed once here, not per review.
public struct ClusterAuthToken: Codable, Sendable {
    public enum Expiry: Sendable, Hashable {
        /// `expiresAt` empty or absent.
        case never
        case at(Timestamp)
        /// `expiresAt` is not RFC 3339: the token is refused, as in the Go service.
        case unreadable
    }

    /// The fields live in one shared, immutable object so that the record is one pointer wide:
    /// maps of 100,000 tokens hold 8 bytes per bucket instead of ~200 (a Dictionary keeps up to
    /// 2.6 buckets per entry), and copying a map or a snapshot retains instead of copying.
    private final class Storage: Sendable {
        let metadata: ObjectMeta
        let userName: String
        let enabled: Bool
        let expiresAt: String
        let expiry: Expiry
        let lastUsedAt: Timestamp?
        /// Absent in every token Rancher ≥ 2.13 writes, so it costs one pointer when unused.
        let legacy: LegacyHash?
        let contentVersion: String

        init(metadata: ObjectMeta, userName: String, enabled: Bool, expiresAt: String, lastUsedAt: Timestamp?, legacy: LegacyHash?) {
            self.metadata = metadata
            self.userName = userName
            self.enabled = enabled
            self.expiresAt = expiresAt
            self.expiry = ClusterAuthToken.expiry(of: expiresAt)
            self.lastUsedAt = lastUsedAt
            self.legacy = legacy
            self.contentVersion = ContentVersion.of([
                metadata.resourceVersion == nil ? "unversioned" : "", metadata.name, userName, String(enabled),
                expiresAt, legacy?.text ?? "",
            ])
        }
    }

    private final class LegacyHash: Sendable {
        let text: String
        let parsed: Result<StoredHash, HashFormatError>

        init?(_ text: String) {
            guard !text.isEmpty else { return nil }
            self.text = text
            self.parsed = StoredHash.parse(text)
        }
    }

    private var storage: Storage

    /// The only mutable field (a source may stamp a resourceVersion); the content version follows it.
    public var metadata: ObjectMeta {
        get { storage.metadata }
        set {
            storage = Storage(
                metadata: newValue, userName: userName, enabled: enabled, expiresAt: expiresAt, lastUsedAt: lastUsedAt,
                legacy: storage.legacy)
        }
    }
    public var userName: String { storage.userName }
    public var enabled: Bool { storage.enabled }
    public var expiresAt: String { storage.expiresAt }
    public var expiry: Expiry { storage.expiry }
    public var lastUsedAt: Timestamp? { storage.lastUsedAt }
    /// The deprecated in-object hash (Rancher ≤ 2.12); when non-empty it wins over the Secret.
    public var legacyHash: String { storage.legacy?.text ?? "" }
    public var parsedLegacyHash: Result<StoredHash, HashFormatError>? { storage.legacy?.parsed }
    /// Identifies the content a review depends on: everything but `lastUsedAt`, which the service
    /// itself rewrites and which must not expire remembered verifications. Computed once per
    /// record, not per review (it is a SHA-256 over the fields).
    public var contentVersion: String { storage.contentVersion }

    public var name: String { metadata.name }

    public init(
        metadata: ObjectMeta, userName: String, enabled: Bool, expiresAt: String = "",
        lastUsedAt: Timestamp? = nil, legacyHash: String = ""
    ) {
        storage = Storage(
            metadata: metadata, userName: userName, enabled: enabled, expiresAt: expiresAt, lastUsedAt: lastUsedAt,
            legacy: LegacyHash(legacyHash))
    }

    private enum CodingKeys: String, CodingKey { case metadata, userName, enabled, expiresAt, lastUsedAt, hash }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta(name: "")
        let lastUsedText = try container.decodeIfPresent(String.self, forKey: .lastUsedAt) ?? ""
        var lastUsedAt: Timestamp?
        if !lastUsedText.isEmpty {
            // metav1.Time fails to unmarshal on a bad value, which makes the whole object unreadable.
            guard let parsed = RFC3339.parse(lastUsedText) else {
                throw RecordFieldError(field: "lastUsedAt", problem: "not an RFC 3339 time")
            }
            lastUsedAt = parsed
        }
        self.init(
            metadata: metadata,
            userName: try container.decodeIfPresent(String.self, forKey: .userName) ?? "",
            // A missing `enabled` decodes to Go's zero value, false: the token is refused.
            enabled: try container.decodeIfPresent(Bool.self, forKey: .enabled) ?? false,
            expiresAt: try container.decodeIfPresent(String.self, forKey: .expiresAt) ?? "",
            lastUsedAt: lastUsedAt,
            legacyHash: try container.decodeIfPresent(String.self, forKey: .hash) ?? "")
    }

    /// The same record with another legacy hash.
    public func withLegacyHash(_ hash: String) -> ClusterAuthToken {
        ClusterAuthToken(
            metadata: metadata, userName: userName, enabled: enabled, expiresAt: expiresAt, lastUsedAt: lastUsedAt, legacyHash: hash)
    }

    /// Writes the Kubernetes shape the decoder reads (for the snapshot file).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(userName, forKey: .userName)
        try container.encode(enabled, forKey: .enabled)
        if !expiresAt.isEmpty { try container.encode(expiresAt, forKey: .expiresAt) }
        if let lastUsedAt { try container.encode(RFC3339.format(lastUsedAt), forKey: .lastUsedAt) }
        try container.encode(legacyHash, forKey: .hash)
    }

    static func expiry(of text: String) -> Expiry {
        if text.isEmpty { return .never }
        guard let instant = RFC3339.parse(text) else { return .unreadable }
        return .at(instant)
    }
}
