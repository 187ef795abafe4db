/// Why a token was refused: a closed set, used for `status.error`, metrics labels and logs.
/// None of them says anything about the secret or the hash beyond "wrong" or "unusable".
public enum RefusalReason: String, Sendable, Hashable, CaseIterable {
    case notRancherToken = "not_rancher_token"
    case tokenNotFound = "token_not_found"
    case tokenDisabled = "token_disabled"
    case tokenExpired = "token_expired"
    case tokenExpiryInvalid = "token_expiry_invalid"
    case userNotFound = "user_not_found"
    case userDisabled = "user_disabled"
    case hashMissing = "hash_missing"
    case hashInvalid = "hash_invalid"
    case secretMismatch = "secret_mismatch"
    case userRefreshInvalid = "user_refresh_invalid"
    /// Longer than any token this service issues or accepts (`--max-token-bytes`).
    case tokenTooLong = "token_too_long"
    // Emergency tokens (signed JWTs; see ``EmergencyAccess``).
    case emergencyMalformed = "emergency_malformed"
    /// Signed by no listed key: like any other foreign JWT (an expired service-account token).
    case emergencyUnknownKey = "emergency_unknown_key"
    case emergencyAlgorithmMismatch = "emergency_algorithm_mismatch"
    case emergencySignatureInvalid = "emergency_signature_invalid"
    case emergencyWrongAudience = "emergency_wrong_audience"
    case emergencyExpired = "emergency_expired"
    case emergencyNotYetValid = "emergency_not_yet_valid"
    case emergencyLifetimeTooLong = "emergency_lifetime_too_long"
    case emergencyRevoked = "emergency_revoked"

    /// The `status.error` text sent to kube-apiserver (it only reaches the apiserver's log).
    ///
    /// `nil` for tokens that are not Rancher-shaped or too long: they can never become valid, so the refusal
    /// goes out bare and kube-apiserver may cache it for its webhook TTL, sparing us every
    /// repeat of an expired service-account JWT. All other refusals carry an error, which the
    /// apiserver never caches, so a token created or re-enabled a moment later works at once.
    public var statusError: String? {
        switch self {
        case .notRancherToken, .tokenTooLong, .emergencyUnknownKey: return nil
        case .tokenNotFound: return "token not found"
        case .tokenDisabled: return "token is disabled"
        case .tokenExpired: return "token has expired"
        case .tokenExpiryInvalid: return "token expiry is unreadable"
        case .userNotFound: return "user not found"
        case .userDisabled: return "user is disabled"
        case .hashMissing: return "token hash is missing"
        case .hashInvalid: return "token hash is invalid"
        case .secretMismatch: return "token secret does not match"
        case .userRefreshInvalid: return "user lastRefresh is unreadable"
        case .emergencyMalformed: return "emergency token is malformed"
        case .emergencyAlgorithmMismatch: return "emergency token algorithm does not match its key"
        case .emergencySignatureInvalid: return "emergency token signature is invalid"
        case .emergencyWrongAudience: return "emergency token issuer or audience does not match"
        case .emergencyExpired: return "emergency token has expired"
        case .emergencyNotYetValid: return "emergency token is not valid yet"
        case .emergencyLifetimeTooLong: return "emergency token lifetime exceeds the limit"
        case .emergencyRevoked: return "emergency token is revoked"
        }
    }
}

/// Writes a successful review asks for. They are values, carried out by a background writer (or
/// not at all, for read-only sources); they never hold up or fail the review itself.
public struct SideEffects: Sendable, Hashable {
    /// Set `ClusterAuthToken.lastUsedAt` to this instant (whole seconds, UTC).
    public var touchLastUsedAt: Timestamp?
    /// Set `ClusterUserAttribute.needsRefresh: true` (the refresh debounce has passed).
    public var requestUserRefresh: Bool = false
    /// Move the legacy `ClusterAuthToken.hash` into the hash Secret and clear the field.
    public var migrateLegacyHash: Bool = false

    public init(touchLastUsedAt: Timestamp? = nil, requestUserRefresh: Bool = false, migrateLegacyHash: Bool = false) {
        self.touchLastUsedAt = touchLastUsedAt
        self.requestUserRefresh = requestUserRefresh
        self.migrateLegacyHash = migrateLegacyHash
    }

    public var isEmpty: Bool { touchLastUsedAt == nil && !requestUserRefresh && !migrateLegacyHash }
}

/// What the audit line says about an emergency token (never the token or its signature).
public struct EmergencyUse: Sendable, Equatable {
    /// The token id, key id and the issuer's stated reason, once the token could be read.
    public var jti: String?
    public var kid: String?
    public var reason: String?

    public init(jti: String? = nil, kid: String? = nil, reason: String? = nil) {
        self.jti = jti
        self.kid = kid
        self.reason = reason
    }
}

/// The answer to one review.
public struct Decision: Sendable {
    public enum Outcome: Sendable {
        case authenticated(UserRecord)
        case refused(RefusalReason)
    }

    public var outcome: Outcome
    /// The ClusterAuthToken the token named, when it was Rancher-shaped (safe to log; no secret).
    public var tokenName: String?
    /// The records the decision used, for side effects and for the revocation-safe cache.
    public var token: ClusterAuthToken?
    public var hashAlgorithm: HashAlgorithm?
    public var effects: SideEffects
    /// Set for every decision about an emergency token, for the audit line and metrics.
    public var emergency: EmergencyUse?
    /// A wrong secret for a name that has had many lately (the service's failure count): someone
    /// may be guessing. For the audit line only; it never changes the outcome.
    public var guessing = false
    /// For an authenticated decision: what an exchange let through on it was authenticated as, so
    /// that it can be re-decided while it stays open (``SessionIdentity``).
    public var session: SessionIdentity?

    public init(
        outcome: Outcome, tokenName: String?, token: ClusterAuthToken? = nil, hashAlgorithm: HashAlgorithm? = nil,
        effects: SideEffects = SideEffects()
    ) {
        self.outcome = outcome
        self.tokenName = tokenName
        self.token = token
        self.hashAlgorithm = hashAlgorithm
        self.effects = effects
    }

    public var isAuthenticated: Bool {
        if case .authenticated = outcome { return true }
        return false
    }

    public var refusalReason: RefusalReason? {
        if case .refused(let reason) = outcome { return reason }
        return nil
    }
}
