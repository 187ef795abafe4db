/// The whole chain of one token, by its name only (never its secret): the record, its expiry, its
/// hash and where it comes from, its user, and the answer the service would give for the correct
/// secret. The answer is the review's own rules (``Authenticator/begin(token:snapshot:now:)`` and
/// ``PendingVerification/decide(secretMatches:)``), not a second reading of them.
public struct TokenDiagnosis: Sendable, Codable, Equatable {
    public struct TokenPart: Sendable, Codable, Equatable {
        public var enabled: Bool
        public var userName: String
        /// `expiresAt` as stored; empty when the token never expires.
        public var expiresAt: String
        /// Seconds until `expiresAt` (negative: expired that long ago); `nil` when never or unreadable.
        public var expiresInSeconds: Int64?
        public var expiryReadable: Bool
        public var lastUsedAt: String?
    }

    public struct HashPart: Sendable, Codable, Equatable {
        /// `secret` (the Secret named like the token), `legacy` (the token's own `hash` field), `none`.
        public var source: String
        /// `sha3`, `sha256` or `scrypt` when the hash parses.
        public var algorithm: String?
        /// Why it does not parse (never the hash itself).
        public var problem: String?
    }

    public struct UserPart: Sendable, Codable, Equatable {
        public var name: String
        public var enabled: Bool
        public var groups: [String]
        public var needsRefresh: Bool
        public var lastRefresh: String?
    }

    public struct Answer: Sendable, Codable, Equatable {
        public var authenticated: Bool
        /// The refusal reason (``RefusalReason``'s value) when refused.
        public var reason: String?
        /// The `status.error` text kube-apiserver would receive.
        public var error: String?
        public var username: String?
        public var groups: [String]?
    }

    public var name: String
    public var nameValid: Bool
    /// `nil`: no ClusterAuthToken of that name.
    public var token: TokenPart?
    public var hash: HashPart?
    /// `nil`: the token names a user with no ClusterUserAttribute (or there is no token).
    public var user: UserPart?
    /// What a review with the correct secret would answer now.
    public var answer: Answer
    /// What the census says of this token (problems and states).
    public var findings: [RecordFinding]

    public init(name: String, snapshot: RecordSnapshot, now: Timestamp) {
        self.name = name
        nameValid = ObjectName.isValid(name)
        findings = []
        var pending: PendingVerification?
        var refused: Decision?
        switch Authenticator().begin(token: name + ":", snapshot: snapshot, now: now) {
        case .decided(let decision): refused = decision
        case .verify(let verification): pending = verification
        }
        let decision = pending?.decide(secretMatches: true) ?? refused
        if case .authenticated(let user) = decision?.outcome {
            answer = Answer(authenticated: true, username: user.attribute.name, groups: user.attribute.groups)
        } else {
            let reason = decision?.refusalReason ?? .tokenNotFound
            answer = Answer(authenticated: false, reason: reason.rawValue, error: reason.statusError)
        }
        guard let record = snapshot.tokens[name] else { return }
        var expiresIn: Int64?
        if case .at(let expiresAt) = record.expiry { expiresIn = expiresAt.seconds - now.seconds }
        token = TokenPart(
            enabled: record.enabled, userName: record.userName, expiresAt: record.expiresAt, expiresInSeconds: expiresIn,
            expiryReadable: record.expiry != .unreadable, lastUsedAt: record.lastUsedAt.map(RFC3339.format))
        switch RecordCensus.hashSource(of: name, record, snapshot) {
        case .none: hash = HashPart(source: "none")
        case .legacy(let parsed): hash = Self.hashPart("legacy", parsed)
        case .secret(let parsed): hash = Self.hashPart("secret", parsed)
        }
        if let attribute = snapshot.users[record.userName]?.attribute {
            user = UserPart(
                name: attribute.name, enabled: attribute.enabled, groups: attribute.groups, needsRefresh: attribute.needsRefresh,
                lastRefresh: attribute.lastRefresh.isEmpty ? nil : attribute.lastRefresh)
        }
        // The census of a snapshot holding only this token and what it refers to.
        let own = RecordSnapshot(
            tokens: RecordTable([record]), users: snapshot.users[record.userName].map { [record.userName: $0] } ?? [:],
            hashSecrets: RecordTable(snapshot.hashSecrets[name].map { [$0] } ?? []), refreshConfigMap: snapshot.refreshConfigMap)
        findings = RecordCensus.take(own, now: now).findings.filter { $0.kind == .clusterAuthToken }
    }

    private static func hashPart(_ source: String, _ parsed: Result<StoredHash, HashFormatError>) -> HashPart {
        switch parsed {
        case .success(let hash): return HashPart(source: source, algorithm: hash.algorithm.rawValue)
        case .failure(let error): return HashPart(source: source, problem: "\(error)")
        }
    }
}
