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
    fileprivate final class Storage: Sendable {
        let metadata: ObjectMeta
        let userName: String
        let enabled: Bool
        /// `expiresAt` as stored: its instant when `RFC3339.format` writes the text back exactly
        /// (the text is rendered when asked for; a review reads only `expiry`).
        let expiresAt: ExpiresAt
        let expiry: Expiry
        let lastUsedAt: Timestamp?
        /// Absent in every token Rancher ≥ 2.13 writes, so it costs one pointer when unused.
        let legacy: LegacyHash?
        let contentDigest: ContentDigest

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
            self.contentDigest = ContentVersion.digest(of: [
                metadata.resourceVersion == nil ? "unversioned" : "", metadata.name, userName, String(enabled),
                expiresAt, legacy?.text ?? "",
            ])
        }

        /// From a table row: every derived field as computed when the record was stored.
        init(metadata: ObjectMeta, userName: String, row: Row) {
            self.metadata = metadata
            self.userName = userName
            self.enabled = row.enabled
            self.expiresAt = row.expiresAt
            self.expiry = row.expiry
            self.lastUsedAt = row.lastUsedAt
            self.legacy = row.rare?.legacy
            self.contentDigest = row.contentDigest
        }
    }

    fileprivate enum ExpiresAt: Sendable {
        case empty
        case canonical(Timestamp)
        case text(String)
    }

    /// A token as a ``RecordTable`` row of 48 bytes, with no object and no heap string: its content
    /// digest as integers, both times as seconds and nanoseconds, flags; the user id goes to the
    /// table's arena. What Rancher does not write — a legacy hash, an `expiresAt` that is not
    /// canonical RFC 3339 — is boxed (one pointer, `nil` for the usual token).
    public struct Row: Sendable {
        fileprivate final class Rare: Sendable {
            let legacy: LegacyHash?
            let expiresText: String?

            init(legacy: LegacyHash?, expiresText: String?) {
                self.legacy = legacy
                self.expiresText = expiresText
            }
        }

        private let contentHigh: UInt64
        private let expiresSeconds: Int64
        private let lastUsedSeconds: Int64
        fileprivate let rare: Rare?
        private let contentLow: UInt32
        private let expiresNanoseconds: Int32
        private let lastUsedNanoseconds: Int32
        private let flags: UInt8

        private static let enabledFlag: UInt8 = 1
        private static let lastUsedFlag: UInt8 = 2
        private static let canonicalExpiryFlag: UInt8 = 4

        fileprivate init(_ storage: Storage) {
            var flags: UInt8 = storage.enabled ? Self.enabledFlag : 0
            var expires = Timestamp(seconds: 0)
            var expiresText: String?
            switch storage.expiresAt {
            case .empty: break
            case .canonical(let instant):
                expires = instant
                flags |= Self.canonicalExpiryFlag
            case .text(let text): expiresText = text
            }
            if storage.lastUsedAt != nil { flags |= Self.lastUsedFlag }
            let lastUsed = storage.lastUsedAt ?? Timestamp(seconds: 0)
            contentHigh = storage.contentDigest.high
            contentLow = storage.contentDigest.low
            expiresSeconds = expires.seconds
            expiresNanoseconds = expires.nanoseconds
            lastUsedSeconds = lastUsed.seconds
            lastUsedNanoseconds = lastUsed.nanoseconds
            rare = storage.legacy == nil && expiresText == nil ? nil : Rare(legacy: storage.legacy, expiresText: expiresText)
            self.flags = flags
        }

        var enabled: Bool { flags & Self.enabledFlag != 0 }
        var lastUsedAt: Timestamp? {
            flags & Self.lastUsedFlag == 0 ? nil : Timestamp(seconds: lastUsedSeconds, nanoseconds: lastUsedNanoseconds)
        }
        var contentDigest: ContentDigest { ContentDigest(high: contentHigh, low: contentLow) }

        fileprivate var expiresAt: ExpiresAt {
            if flags & Self.canonicalExpiryFlag != 0 {
                return .canonical(Timestamp(seconds: expiresSeconds, nanoseconds: expiresNanoseconds))
            }
            if let text = rare?.expiresText { return .text(text) }
            return .empty
        }

        var expiry: Expiry {
            switch expiresAt {
            case .empty: return .never
            case .canonical(let instant): return .at(instant)
            case .text(let text): return ClusterAuthToken.expiry(of: text)
            }
        }

        var parsedLegacyHash: Result<StoredHash, HashFormatError>? { rare?.legacy?.parsed }

        /// The user id that ``ClusterAuthToken/tableRow(extra:)`` put in the arena.
        static func userName(_ extra: UnsafeRawBufferPointer) -> String { String(decoding: extra, as: UTF8.self) }
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
    public var contentVersion: String { storage.contentDigest.text }

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
        extra.append(contentsOf: userName.utf8)
        return Row(storage)
    }

    public static func record(from row: Row, metadata: ObjectMeta, extra: UnsafeRawBufferPointer) -> ClusterAuthToken {
        ClusterAuthToken(storage: Storage(metadata: metadata, userName: Row.userName(extra), row: row))
    }

    private init(storage: Storage) { self.storage = storage }
}
