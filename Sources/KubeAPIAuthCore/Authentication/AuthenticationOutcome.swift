import RancherAuth

/// What the authentication core concluded about one bearer token. Each front door renders it in
/// its own way (a TokenReview answer; a forwarded request with impersonation headers or a 401).
public enum AuthenticationOutcome: Sendable {
    /// The token is valid: this is the Rancher user, with the groups of its ClusterUserAttribute,
    /// and what an exchange let through on it stays valid only as long as (``SessionIdentity``).
    case authenticated(UserRecord, SessionIdentity?)
    /// A definite "no", for a reason from a closed set.
    case refused(RefusalReason)
    /// Cannot tell now (no records yet, overload, an internal failure). Never a "no": the caller
    /// answers so that the client may ask again (503 without `Retry-After`).
    case unavailable(UnavailableReason)
}

/// Why the core cannot tell now (the `reason` of `kube_api_auth_reviews_total{result="unavailable"}`).
public enum UnavailableReason: String, Sendable, CaseIterable {
    case notSynced = "not_synced"
    case scryptQueueFull = "scrypt_queue_full"
    case verificationFailed = "verification_failed"
}

extension UnavailableReason {
    /// A short explanation for an answer body (never anything about the token).
    public var message: String {
        switch self {
        case .notSynced: return "records are not loaded yet"
        case .scryptQueueFull: return "too many expensive verifications in progress"
        case .verificationFailed: return "verification could not run"
        }
    }
}
