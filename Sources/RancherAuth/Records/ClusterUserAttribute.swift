/// `ClusterUserAttribute` (cluster.cattle.io/v3): a Rancher user's state in the downstream cluster.
public struct ClusterUserAttribute: Codable, Sendable {
    /// The only mutable field (a source may stamp a resourceVersion); the content version follows it.
    public var metadata: ObjectMeta { didSet { contentVersion = Self.contentVersion(self) } }
    /// Group principal IDs, answered verbatim and in stored order.
    public let groups: [String]
    public let enabled: Bool
    public let needsRefresh: Bool
    public let lastRefresh: String
    /// `lastRefresh` parsed; `nil` when empty or unreadable (see ``lastRefreshReadable``).
    public let lastRefreshTime: Timestamp?
    /// Identifies what a review depends on (name, enabled, groups), not the refresh bookkeeping
    /// (`needsRefresh`, `lastRefresh`) that the service and Rancher rewrite. Computed once per record.
    public private(set) var contentVersion: String = ""

    public var name: String { metadata.name }

    private static func contentVersion(_ user: ClusterUserAttribute) -> String {
        ContentVersion.of([user.metadata.resourceVersion == nil ? "unversioned" : "", user.name, String(user.enabled)] + user.groups)
    }

    public var lastRefreshReadable: Bool { lastRefresh.isEmpty || lastRefreshTime != nil }

    public init(
        metadata: ObjectMeta, groups: [String], enabled: Bool, needsRefresh: Bool = false, lastRefresh: String = ""
    ) {
        self.metadata = metadata
        self.groups = groups
        self.enabled = enabled
        self.needsRefresh = needsRefresh
        self.lastRefresh = lastRefresh
        self.lastRefreshTime = lastRefresh.isEmpty ? nil : RFC3339.parse(lastRefresh)
        self.contentVersion = Self.contentVersion(self)
    }

    private enum CodingKeys: String, CodingKey { case metadata, groups, enabled, needsRefresh, lastRefresh }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            metadata: try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta(name: ""),
            groups: try container.decodeIfPresent([String].self, forKey: .groups) ?? [],
            enabled: try container.decodeIfPresent(Bool.self, forKey: .enabled) ?? false,
            needsRefresh: try container.decodeIfPresent(Bool.self, forKey: .needsRefresh) ?? false,
            lastRefresh: try container.decodeIfPresent(String.self, forKey: .lastRefresh) ?? "")
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(groups, forKey: .groups)
        try container.encode(enabled, forKey: .enabled)
        try container.encode(needsRefresh, forKey: .needsRefresh)
        if !lastRefresh.isEmpty { try container.encode(lastRefresh, forKey: .lastRefresh) }
    }
}
