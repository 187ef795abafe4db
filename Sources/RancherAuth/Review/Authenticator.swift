/// The review rules of Rancher's kube-api-auth (spec §2.5), as a pure function of a token, a
/// snapshot of records and the current time.
///
/// A review has two steps so that the caller decides where hashing runs: ``begin(token:snapshot:now:)``
/// does every lookup and check that needs no hashing (and decides emergency tokens, whose
/// signature check takes tens of microseconds); the returned ``PendingVerification`` does
/// the hash check and the post-verification rules. SHA-2/SHA-3 checks take about a microsecond and
/// run inline; scrypt (tens of milliseconds) belongs on a bounded worker pool.
public struct Authenticator: Sendable {
    public init() {}

    public enum Step: Sendable {
        case decided(Decision)
        case verify(PendingVerification)
    }

    public func begin(token: String, snapshot: RecordSnapshot, now: Timestamp) -> Step {
        guard let bearer = RancherBearerToken(token) else {
            // Without a readable emergency Secret every JWT is just a foreign token.
            if let access = snapshot.emergency, EmergencyToken.isCandidate(token) {
                return .decided(EmergencyVerification.decide(token: token, access: access, users: snapshot.users, now: now))
            }
            return .decided(Decision(outcome: .refused(.notRancherToken), tokenName: nil))
        }
        let accessKey = String(bearer.accessKey)
        func refuse(_ reason: RefusalReason, _ token: ClusterAuthToken? = nil) -> Step {
            .decided(Decision(outcome: .refused(reason), tokenName: accessKey, token: token))
        }
        guard let record = snapshot.tokens[accessKey] else { return refuse(.tokenNotFound) }
        guard record.enabled else { return refuse(.tokenDisabled, record) }
        guard let user = snapshot.users[record.userName] else { return refuse(.userNotFound, record) }
        guard user.attribute.enabled else { return refuse(.userDisabled, record) }
        switch record.expiry {
        case .never: break
        case .unreadable: return refuse(.tokenExpiryInvalid, record)
        // Still valid at the exact expiry instant, as in Go (`expiresAt.Before(now)`).
        case .at(let expiresAt): if expiresAt < now { return refuse(.tokenExpired, record) }
        }
        // The deprecated in-object hash wins over the Secret, and its use triggers the migration.
        let parsedHash: Result<StoredHash, HashFormatError>
        let usesLegacyHash: Bool
        var secretVersion: String?
        if let legacy = record.parsedLegacyHash {
            parsedHash = legacy
            usesLegacyHash = true
        } else if let secret = snapshot.hashSecrets[accessKey] {
            parsedHash = secret.hash
            usesLegacyHash = false
            secretVersion = secret.metadata.resourceVersion
        } else {
            return refuse(.hashMissing, record)
        }
        guard case .success(let hash) = parsedHash else { return refuse(.hashInvalid, record) }
        // Records without a resourceVersion (none was given) are never matched.
        let versions = RecordVersions(
            token: record.metadata.resourceVersion == nil ? nil : record.contentVersion,
            user: user.attribute.metadata.resourceVersion == nil ? nil : user.attribute.contentVersion,
            secret: usesLegacyHash ? nil : secretVersion, legacyHash: usesLegacyHash)
        return .verify(
            PendingVerification(
                hash: hash, secret: bearer.secret, token: record, user: user, usesLegacyHash: usesLegacyHash,
                refreshPeriod: snapshot.refreshPeriod, now: now, versions: versions))
    }

    /// Both steps at once, hashing on the caller's thread.
    public func review(token: String, snapshot: RecordSnapshot, now: Timestamp) -> Decision {
        switch begin(token: token, snapshot: snapshot, now: now) {
        case .decided(let decision): return decision
        case .verify(let pending): return pending.run()
        }
    }
}

/// The versions of the records a verification used. A remembered verification may be reused only
/// while all of them are unchanged: any edit to the token, the user or the hash Secret (revocation,
/// rotation, disable, groups) forces a fresh check. The hash Secret is compared by resourceVersion;
/// the token and the user by ``ClusterAuthToken/contentVersion`` and
/// ``ClusterUserAttribute/contentVersion``, which leave out the `lastUsedAt` and `needsRefresh`
/// bookkeeping the service writes itself (it would otherwise expire every entry each minute).
public struct RecordVersions: Sendable, Hashable {
    public var token: String?
    public var user: String?
    public var secret: String?
    public var legacyHash: Bool

    public init(token: String?, user: String?, secret: String?, legacyHash: Bool) {
        self.token = token
        self.user = user
        self.secret = secret
        self.legacyHash = legacyHash
    }

    /// Records without resourceVersions (a source that has none) can never be matched.
    public var isComplete: Bool { token != nil && user != nil && (legacyHash || secret != nil) }
}

/// The hash check of a review and the rules that follow a successful one.
public struct PendingVerification: Sendable {
    public let hash: StoredHash
    let secret: Substring
    public let token: ClusterAuthToken
    public let user: UserRecord
    let usesLegacyHash: Bool
    let refreshPeriod: RefreshPeriod
    let now: Timestamp
    public let versions: RecordVersions

    /// The token's name (the access key).
    public var accessKey: String { token.name }

    public var isExpensive: Bool { hash.isExpensive }

    public func run() -> Decision {
        decide(secretMatches: hash.verify(secret: secret))
    }

    /// The rules after the hash check, given its result.
    public func decide(secretMatches: Bool) -> Decision {
        var decision = Decision(
            outcome: .refused(.secretMismatch), tokenName: token.name, token: token, hashAlgorithm: hash.algorithm)
        guard secretMatches else { return decision }
        var effects = SideEffects(migrateLegacyHash: usesLegacyHash)
        let attribute = user.attribute
        if case .enabled(let period) = refreshPeriod, !attribute.lastRefresh.isEmpty, !attribute.needsRefresh {
            guard let lastRefresh = attribute.lastRefreshTime else {
                decision.outcome = .refused(.userRefreshInvalid)
                return decision
            }
            if lastRefresh.adding(nanoseconds: period) < now { effects.requestUserRefresh = true }
        }
        let second = now.truncatedToSeconds
        if token.lastUsedAt?.truncatedToSeconds != second { effects.touchLastUsedAt = second }
        decision.outcome = .authenticated(user)
        decision.effects = effects
        var deadline: Timestamp?
        if case .at(let expiresAt) = token.expiry { deadline = expiresAt }
        decision.session = SessionIdentity(
            credential: .token(name: token.name, hash: hash), user: attribute.name, groups: attribute.groups, deadline: deadline)
        return decision
    }
}
