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
        /// `expiresAt` as stored: its instant when `RFC3339.format` writes the text back exactly
        /// (the text is rendered when asked for; a review reads only `expiry`).
        let expiresAt: Row.ExpiresAt
        let expiry: Expiry
        let lastUsedAt: Timestamp?
        /// Absent in every token Rancher ≥ 2.13 writes, so it costs one pointer when unused.
        let legacy: LegacyHash?
        let contentVersion: String

        init(metadata: ObjectMeta, userName: String, enabled: Bool, expiresAt: String, lastUsedAt: Timestamp?, legacy: LegacyHash?) {
            self.metadata = metadata
            self.userName = userName
            self.enabled = enabled
            let expiry = ClusterAuthToken.expiry(of: expiresAt)
            if expiresAt.isEmpty {
                self.expiresAt = .empty
            } else if case .at(let instant) = expiry, RFC3339.format(instant) == expiresAt {
                self.expiresAt = .canonical(instant)
            } else {
                self.expiresAt = .text(expiresAt)
            }
            self.expiry = expiry
            self.lastUsedAt = lastUsedAt
            self.legacy = legacy
            self.contentVersion = ContentVersion.of([
                metadata.resourceVersion == nil ? "unversioned" : "", metadata.name, userName, String(enabled),
                expiresAt, legacy?.text ?? "",
            ])
        }

        /// From a table row: every derived field as computed when the record was stored.
        init(metadata: ObjectMeta, row: Row) {
            self.metadata = metadata
            self.userName = row.userName
            self.enabled = row.enabled
            self.expiresAt = row.expiresAt
            switch row.expiresAt {
            case .empty: self.expiry = .never
            case .canonical(let instant): self.expiry = .at(instant)
            case .text(let text): self.expiry = ClusterAuthToken.expiry(of: text)
            }
            self.lastUsedAt = row.lastUsedAt
            self.legacy = row.legacy
            self.contentVersion = row.contentVersion
        }
    }

    /// A token as a ``RecordTable`` row: no object and, for the usual field sizes, no heap string
    /// (user ids, resourceVersions and content versions fit in a `String`'s 15 inline bytes; an
    /// `expiresAt` that `RFC3339.format` writes back exactly is kept as its instant).
    public struct Row: Sendable {
        enum ExpiresAt: Sendable {
            case empty
            case canonical(Timestamp)
            case text(String)
        }

        let namespace: String?
        let resourceVersion: String?
        let userName: String
        let contentVersion: String
        let expiresAt: ExpiresAt
        let lastUsedAt: Timestamp?
        let enabled: Bool
        fileprivate let legacy: LegacyHash?

        var expiry: Expiry {
            switch expiresAt {
            case .empty: return .never
            case .canonical(let instant): return .at(instant)
            case .text(let text): return ClusterAuthToken.expiry(of: text)
            }
        }

        var parsedLegacyHash: Result<StoredHash, HashFormatError>? { legacy?.parsed }
    }

    fileprivate final class LegacyHash: Sendable {
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
    public var expiresAt: String {
        switch storage.expiresAt {
        case .empty: return ""
        case .canonical(let instant): return RFC3339.format(instant)
        case .text(let text): return text
        }
    }
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

extension ClusterAuthToken: TableRecord {
    public func tableRow(extra: inout [UInt8]) -> Row {
        Row(
            namespace: metadata.namespace, resourceVersion: metadata.resourceVersion, userName: userName, contentVersion: contentVersion,
            expiresAt: storage.expiresAt, lastUsedAt: lastUsedAt, enabled: enabled, legacy: storage.legacy)
    }

    public static func record(from row: Row, name: String, extra: UnsafeRawBufferPointer) -> ClusterAuthToken {
        ClusterAuthToken(
            storage: Storage(metadata: ObjectMeta(name: name, namespace: row.namespace, resourceVersion: row.resourceVersion), row: row))
    }

    private init(storage: Storage) { self.storage = storage }
}
