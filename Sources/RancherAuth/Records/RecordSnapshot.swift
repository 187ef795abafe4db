/// A user's record with its success answer rendered: the part after `apiVersion`, which is the
/// same for both TokenReview versions, kept once (``TokenReviewResponse/prefix(_:)`` is the rest).
/// An object, so that the users' dictionary holds 8 bytes per bucket (a quarter of its buckets
/// are empty) and a decision carries one reference instead of the record's five.
public final class UserRecord: Sendable {
    public let attribute: ClusterUserAttribute
    public let authenticatedBodyRest: [UInt8]

    public init(_ attribute: ClusterUserAttribute) {
        self.attribute = attribute
        self.authenticatedBodyRest = TokenReviewResponse.authenticatedBodyRest(username: attribute.name, groups: attribute.groups)
    }

    /// The whole answer in `apiVersion` (the webhook sends the two parts without joining them).
    public func authenticatedBody(for apiVersion: TokenReviewAPIVersion) -> [UInt8] {
        TokenReviewResponse.prefix(apiVersion) + authenticatedBodyRest
    }
}

/// An immutable view of all records of one namespace, swapped atomically when the source changes.
/// Reviews read a snapshot without locks; nothing in it changes after construction.
public final class RecordSnapshot: Sendable {
    /// Tokens and hash Secrets by name, as compact tables (``RecordTable``): 100,000 of each are
    /// most of the service's memory. Users (one per ten tokens or fewer) stay a dictionary of
    /// records with their answers rendered.
    public let tokens: RecordTable<ClusterAuthToken>
    public let users: [String: UserRecord]
    public let hashSecrets: RecordTable<HashSecret>
    public let refreshPeriod: RefreshPeriod
    /// The refresh ConfigMap the period came from, when the source has it (for the snapshot file).
    public let refreshConfigMap: RefreshConfigMap?
    /// Emergency access, when its Secret exists and can be read; `nil` turns the path off.
    public let emergency: EmergencyAccess?

    public init(
        tokens: [ClusterAuthToken], users: [ClusterUserAttribute], hashSecrets: [HashSecret],
        refreshPeriod: RefreshPeriod = .disabled, emergency: EmergencyAccess? = nil
    ) {
        self.tokens = RecordTable(tokens)
        self.users = Dictionary(users.map { ($0.name, UserRecord($0)) }, uniquingKeysWith: { _, last in last })
        self.hashSecrets = RecordTable(hashSecrets)
        self.refreshPeriod = refreshPeriod
        self.refreshConfigMap = nil
        self.emergency = emergency
    }

    /// From maps kept up to date by a watching source (user answers already rendered).
    public init(
        tokens: RecordTable<ClusterAuthToken>, users: [String: UserRecord], hashSecrets: RecordTable<HashSecret>,
        refreshConfigMap: RefreshConfigMap?, emergency: EmergencyAccess? = nil
    ) {
        self.tokens = tokens
        self.users = users
        self.hashSecrets = hashSecrets
        self.refreshConfigMap = refreshConfigMap
        self.refreshPeriod = refreshConfigMap?.period ?? .disabled
        self.emergency = emergency
    }

    public static let empty = RecordSnapshot(tokens: [], users: [], hashSecrets: [])
}
