/// What an exchange let through by the proxy was authenticated as, kept while the exchange stays
/// open (a watch, `logs -f`, an `exec` session), so that it can be ended as soon as the records no
/// longer say the same. Re-deciding needs neither the secret nor hashing: the token's secret was
/// verified against `hash`, and the question is only whether the records still hold that hash,
/// enabled, unexpired, for the same user with the same groups.
public struct SessionIdentity: Sendable, Equatable {
    public enum Credential: Sendable, Equatable {
        /// A Rancher token: its record's name, and the stored hash its secret was verified against.
        case token(name: String, hash: StoredHash)
        /// An emergency token: its id, and the listed key (id and public key bytes) that verified it.
        case emergency(jti: String, kid: String, key: [UInt8])
    }

    public let credential: Credential
    public let user: String
    public let groups: [String]
    /// When the token stopped being valid by itself when it was verified (`expiresAt`; `exp` with
    /// the leeway). The records can move it: ``recheck(against:now:)`` tells the current one.
    public let deadline: Timestamp?

    public init(credential: Credential, user: String, groups: [String], deadline: Timestamp?) {
        self.credential = credential
        self.user = user
        self.groups = groups
        self.deadline = deadline
    }

    /// Whether `snapshot` at `now` still lets this identity through as it was: keep (until the
    /// token's current deadline, when it has one), or end, and why. Pure: lookups and comparisons.
    public func recheck(against snapshot: RecordSnapshot, now: Timestamp) -> SessionVerdict {
        let until: Timestamp?
        switch credential {
        case .token(let name, let hash):
            guard let token = snapshot.tokens[name] else { return .end(.tokenDeleted) }
            guard token.enabled else { return .end(.tokenDisabled) }
            switch token.expiry {
            case .never: until = nil
            case .unreadable: return .end(.tokenExpired)
            // Valid at the exact expiry instant, as a review decides it.
            case .at(let expiresAt):
                if expiresAt < now { return .end(.tokenExpired) }
                until = expiresAt
            }
            guard token.userName == user else { return .end(.userChanged) }
            let current: Result<StoredHash, HashFormatError>? = token.parsedLegacyHash ?? snapshot.hashSecrets[name]?.hash
            guard case .success(let stored)? = current, stored == hash else { return .end(.hashChanged) }
        case .emergency(let jti, let kid, let key):
            guard let access = snapshot.emergency, let listed = access.keys[kid], listed.publicKeyBytes == key else {
                return .end(.emergencyKeyRemoved)
            }
            guard !access.revoked.contains(jti) else { return .end(.emergencyRevoked) }
            // The claims are signed: their deadline cannot move.
            if let deadline, deadline <= now { return .end(.emergencyExpired) }
            until = deadline
        }
        guard let record = snapshot.users[user] else { return .end(.userDeleted) }
        guard record.attribute.enabled else { return .end(.userDisabled) }
        guard record.attribute.groups == groups else { return .end(.groupsChanged) }
        return .keep(until: until)
    }
}

/// The re-decision of an open exchange.
public enum SessionVerdict: Sendable, Equatable {
    /// Still let through; re-decide at `until` (the token's current deadline) if nothing else changes.
    case keep(until: Timestamp?)
    case end(SessionEnd)

    public var ended: SessionEnd? {
        if case .end(let reason) = self { return reason }
        return nil
    }
}

/// Why an open exchange was ended (a closed set: metric label and audit field).
public enum SessionEnd: String, Sendable, CaseIterable {
    case tokenDeleted = "token_deleted"
    case tokenDisabled = "token_disabled"
    case tokenExpired = "token_expired"
    case hashChanged = "hash_changed"
    case userChanged = "user_changed"
    case userDeleted = "user_deleted"
    case userDisabled = "user_disabled"
    case groupsChanged = "groups_changed"
    case emergencyKeyRemoved = "emergency_key_removed"
    case emergencyRevoked = "emergency_revoked"
    case emergencyExpired = "emergency_expired"
}
