/// One thing the census found about one record: why it cannot authenticate, what state keeps it
/// from authenticating, or that nothing refers to it. Never holds a secret or a hash: a hash that
/// does not parse is described by ``HashFormatError``, which never quotes it.
public struct RecordFinding: Sendable, Hashable, Comparable, Codable {
    public enum Kind: String, Sendable, Hashable, Comparable, Codable, CaseIterable {
        case clusterAuthToken = "ClusterAuthToken"
        case clusterUserAttribute = "ClusterUserAttribute"
        case secret = "Secret"
        /// A file of a records directory that contributes nothing (it cannot be read or parsed).
        case file = "File"

        /// The `kind` label of the census metric (the records metric's names, plural and lowercase).
        public var metricLabel: String {
            switch self {
            case .clusterAuthToken: return "clusterauthtokens"
            case .clusterUserAttribute: return "clusteruserattributes"
            case .secret: return "secrets"
            case .file: return "files"
            }
        }

        /// The reasons a record of this kind can have.
        public var reasons: [Reason] {
            switch self {
            case .clusterAuthToken:
                return [
                    .nameInvalid, .hashMissing, .hashInvalid, .hashUnknownVersion, .userMissing, .expiryInvalid, .unreadable, .disabled,
                    .expired, .userDisabled,
                ]
            case .clusterUserAttribute: return [.nameInvalid, .lastRefreshInvalid, .unreadable, .unreferenced]
            case .secret: return [.unreadable, .unreferenced]
            case .file: return [.unreadable]
            }
        }

        public static func < (lhs: Kind, rhs: Kind) -> Bool { lhs.order < rhs.order }
        private var order: Int { Self.allCases.firstIndex(of: self) ?? 0 }
    }

    /// How much a finding matters. A `problem` is a record the sync or Rancher got wrong: it can
    /// never authenticate as it is. A `state` is a record doing what its fields say (disabled,
    /// expired). `unused` is a record nothing refers to.
    public enum Severity: String, Sendable, Codable {
        case problem, state, unused
    }

    public enum Reason: String, Sendable, Hashable, Codable, CaseIterable {
        /// `metadata.name` is not a Kubernetes object name (Rancher never writes one).
        case nameInvalid = "name_invalid"
        /// A token with neither a hash Secret nor a legacy `hash` field.
        case hashMissing = "hash_missing"
        /// The token's hash does not parse.
        case hashInvalid = "hash_invalid"
        /// The token's hash names a version no hasher exists for.
        case hashUnknownVersion = "hash_unknown_version"
        /// A token whose user has no ClusterUserAttribute.
        case userMissing = "user_missing"
        /// `expiresAt` is not an RFC 3339 time (refused, as by the Go service).
        case expiryInvalid = "expiry_invalid"
        /// `lastRefresh` is not an RFC 3339 time while refreshing is on: the user's tokens are refused.
        case lastRefreshInvalid = "last_refresh_invalid"
        /// The object cannot be decoded and is treated as absent.
        case unreadable
        case disabled
        case expired
        /// A token whose user is disabled.
        case userDisabled = "user_disabled"
        /// A hash Secret without its token, or a user attribute no token names.
        case unreferenced

        public var severity: Severity {
            switch self {
            case .nameInvalid, .hashMissing, .hashInvalid, .hashUnknownVersion, .userMissing, .expiryInvalid,
                .lastRefreshInvalid, .unreadable:
                return .problem
            case .disabled, .expired, .userDisabled: return .state
            case .unreferenced: return .unused
            }
        }
    }

    public var kind: Kind
    public var name: String
    public var reason: Reason
    /// What exactly: the hash's format problem, the missing user's name, a decoding error.
    public var detail: String?

    public init(kind: Kind, name: String, reason: Reason, detail: String? = nil) {
        self.kind = kind
        self.name = name
        self.reason = reason
        self.detail = detail
    }

    public var severity: Severity { reason.severity }

    public static func < (lhs: RecordFinding, rhs: RecordFinding) -> Bool {
        (lhs.kind, lhs.name, lhs.reason.rawValue) < (rhs.kind, rhs.name, rhs.reason.rawValue)
    }
}

/// What the records hold, and every record that cannot authenticate with its reason: the answer to
/// "why is this token refused / why are the records not what Rancher has". Pure: a snapshot and the
/// time in, findings out; lookups only, no hashing (about a second per million tokens).
public struct RecordCensus: Sendable, Codable, Equatable {
    public var tokens = 0
    public var users = 0
    /// Secrets holding a `hash` entry (other Secrets of the namespace are not records).
    public var hashSecrets = 0
    /// Tokens with no finding at all: enabled, unexpired, their user enabled, their hash readable.
    public var usableTokens = 0
    public var findings: [RecordFinding] = []

    public init() {}

    public var problems: [RecordFinding] { findings.filter { $0.severity == .problem } }

    /// How many records have `reason`, per kind.
    public func count(_ kind: RecordFinding.Kind, _ reason: RecordFinding.Reason) -> Int {
        findings.reduce(0) { $0 + ($1.kind == kind && $1.reason == reason ? 1 : 0) }
    }

    /// Counts per (kind, reason), for metrics and summaries.
    public var countsByReason: [RecordFinding.Kind: [RecordFinding.Reason: Int]] {
        var counts: [RecordFinding.Kind: [RecordFinding.Reason: Int]] = [:]
        for finding in findings { counts[finding.kind, default: [:]][finding.reason, default: 0] += 1 }
        return counts
    }

    /// - Parameter unreadable: objects the source could not decode (they are not in the snapshot).
    public static func take(_ snapshot: RecordSnapshot, unreadable: [RecordFinding] = [], now: Timestamp) -> RecordCensus {
        var census = RecordCensus()
        census.tokens = snapshot.tokens.count
        census.users = snapshot.users.count
        var findings = unreadable
        var namedUsers = Set<String>()
        namedUsers.reserveCapacity(snapshot.users.count)
        // Rows, not records: building 100,000 of each made a census take half a second.
        snapshot.tokens.forEachRow { name, token, bytes in
            let userName = ClusterAuthToken.Row.userName(bytes)
            let before = findings.count
            func found(_ reason: RecordFinding.Reason, _ detail: String? = nil) {
                findings.append(RecordFinding(kind: .clusterAuthToken, name: name, reason: reason, detail: detail))
            }
            if !ObjectName.isValid(name) { found(.nameInvalid) }
            if !token.enabled { found(.disabled) }
            switch token.expiry {
            case .never: break
            case .unreadable: found(.expiryInvalid)
            case .at(let expiresAt): if expiresAt < now { found(.expired, "expired at \(RFC3339.format(expiresAt))") }
            }
            var refusedByUser = false
            if let user = snapshot.users[userName] {
                namedUsers.insert(userName)
                if !user.attribute.enabled { found(.userDisabled, "user \(userName)") }
                // Reported once, on the user; its tokens are not usable meanwhile.
                refusedByUser = lastRefreshRefuses(user.attribute, snapshot.refreshPeriod)
            } else {
                found(.userMissing, userName.isEmpty ? "the token names no user" : "no ClusterUserAttribute \(userName)")
            }
            if let legacy = token.parsedLegacyHash {
                if case .failure(let error) = legacy { found(hashReason(error), "legacy hash field: \(error)") }
            } else if let secret = snapshot.hashSecrets.row(named: name) {
                if let error = secret.failure { found(hashReason(error), "Secret \(name): \(error)") }
            } else {
                found(.hashMissing, "no Secret \(name) and no legacy hash field")
            }
            if findings.count == before, !refusedByUser { census.usableTokens += 1 }
        }
        for (name, user) in snapshot.users {
            if !ObjectName.isValid(name) {
                findings.append(RecordFinding(kind: .clusterUserAttribute, name: name, reason: .nameInvalid))
            }
            if lastRefreshRefuses(user.attribute, snapshot.refreshPeriod) {
                findings.append(RecordFinding(kind: .clusterUserAttribute, name: name, reason: .lastRefreshInvalid))
            }
            if !namedUsers.contains(name) {
                findings.append(RecordFinding(kind: .clusterUserAttribute, name: name, reason: .unreferenced, detail: "no token names this user"))
            }
        }
        snapshot.hashSecrets.forEachRow { name, secret, _ in
            guard secret.hasHashEntry else { return }
            census.hashSecrets += 1
            if !snapshot.tokens.contains(name) {
                findings.append(RecordFinding(kind: .secret, name: name, reason: .unreferenced, detail: "no ClusterAuthToken \(name)"))
            }
        }
        census.findings = findings.sorted()
        return census
    }

    /// Where a token's hash comes from, as the review reads it: the legacy field wins over the Secret.
    public enum HashSource: Sendable {
        case none
        case legacy(Result<StoredHash, HashFormatError>)
        case secret(Result<StoredHash, HashFormatError>)
    }

    public static func hashSource(of name: String, _ token: ClusterAuthToken, _ snapshot: RecordSnapshot) -> HashSource {
        if let legacy = token.parsedLegacyHash { return .legacy(legacy) }
        if let secret = snapshot.hashSecrets[name] { return .secret(secret.hash) }
        return .none
    }

    /// The review refuses a user's tokens when refreshing is on and a set `lastRefresh` is unreadable
    /// (unless a refresh is already asked for).
    static func lastRefreshRefuses(_ user: ClusterUserAttribute, _ period: RefreshPeriod) -> Bool {
        guard case .enabled = period else { return false }
        return !user.lastRefresh.isEmpty && !user.needsRefresh && user.lastRefreshTime == nil
    }

    static func hashReason(_ error: HashFormatError) -> RecordFinding.Reason {
        if case .unknownVersion = error { return .hashUnknownVersion }
        return .hashInvalid
    }
}
