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

    /// The only mutable field (a source may stamp a resourceVersion); the content version follows it.
    public var metadata: ObjectMeta { didSet { contentVersion = Self.contentVersion(self) } }
    public let userName: String
    public let enabled: Bool
    public let expiresAt: String
    public let expiry: Expiry
    public let lastUsedAt: Timestamp?
    /// The deprecated in-object hash (Rancher ≤ 2.12); when non-empty it wins over the Secret.
    public let legacyHash: String
    public let parsedLegacyHash: Result<StoredHash, HashFormatError>?
    /// Identifies the content a review depends on: everything but `lastUsedAt`, which the service
    /// itself rewrites and which must not expire remembered verifications. Computed once per
    /// record, not per review (it is a SHA-256 over the fields).
    public private(set) var contentVersion: String = ""

    public var name: String { metadata.name }

    private static func contentVersion(_ token: ClusterAuthToken) -> String {
        ContentVersion.of([
            token.metadata.resourceVersion == nil ? "unversioned" : "", token.name, token.userName, String(token.enabled),
            token.expiresAt, token.legacyHash,
        ])
    }

    public init(
        metadata: ObjectMeta, userName: String, enabled: Bool, expiresAt: String = "",
        lastUsedAt: Timestamp? = nil, legacyHash: String = ""
    ) {
        self.metadata = metadata
        self.userName = userName
        self.enabled = enabled
        self.expiresAt = expiresAt
        self.expiry = Self.expiry(of: expiresAt)
        self.lastUsedAt = lastUsedAt
        self.legacyHash = legacyHash
        self.parsedLegacyHash = legacyHash.isEmpty ? nil : StoredHash.parse(legacyHash)
        self.contentVersion = Self.contentVersion(self)
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
