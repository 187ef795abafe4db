/// The rules for an emergency token (DESIGN.md decision 12: it cannot create identities).
///
/// Accepted only when: its header names a listed key (`kid`) and uses exactly the algorithm that key
/// declares (so never `none`, never an HMAC keyed with public bytes, never an algorithm the token
/// picks); the signature verifies; `iss` is ``EmergencyAccess/issuer`` and `aud` the cluster's
/// audience; `nbf`, `iat` and `exp` hold within ``EmergencyAccess/leeway``; `exp - iat` is within
/// the limit; `jti` is not revoked; and the `ClusterUserAttribute` of `sub` exists and is enabled.
/// The answer is that user with the attribute's groups; the token's own claims add nothing.
enum EmergencyVerification {
    static func decide(token: String, access: EmergencyAccess, users: [String: UserRecord], now: Timestamp) -> Decision {
        var use = EmergencyUse()
        func refuse(_ reason: RefusalReason) -> Decision {
            var decision = Decision(outcome: .refused(reason), tokenName: nil)
            decision.emergency = use
            return decision
        }
        let parsed: EmergencyToken
        do {
            parsed = try EmergencyToken.parse(token)
        } catch {
            // A JWT of another issuer (an OIDC or service-account token with claims of other
            // shapes) is a foreign token like any other, not a malformed emergency token: the
            // proxy passes such tokens through and the webhook answers them bare.
            if let kid = EmergencyToken.keyID(of: token), access.keys[kid] != nil { return refuse(.emergencyMalformed) }
            return refuse(.emergencyUnknownKey)
        }
        guard let kid = parsed.header.kid, let key = access.keys[kid] else { return refuse(.emergencyUnknownKey) }
        use.kid = kid
        guard parsed.header.alg == key.algorithm.rawValue else { return refuse(.emergencyAlgorithmMismatch) }
        guard key.verify(signature: parsed.signature, input: parsed.signingInput) else { return refuse(.emergencySignatureInvalid) }
        // Signed by a listed key: its claims may be told in the audit line from here on.
        let claims = parsed.claims
        use.jti = claims.jti
        use.reason = claims.reason.map { String($0.prefix(200)) }
        guard claims.iss == EmergencyAccess.issuer, claims.aud == [access.audience] else { return refuse(.emergencyWrongAudience) }
        let seconds = now.seconds
        let leeway = EmergencyAccess.leeway
        guard claims.exp > claims.iat else { return refuse(.emergencyMalformed) }
        // The claims are within EmergencyAccess.acceptedTimes (parse), so the arithmetic is on them,
        // never on the clock's value: nothing here can overflow.
        guard claims.nbf - leeway <= seconds, claims.iat - leeway <= seconds else { return refuse(.emergencyNotYetValid) }
        guard seconds < claims.exp + leeway else { return refuse(.emergencyExpired) }
        guard claims.exp - claims.iat <= access.maxLifetime else { return refuse(.emergencyLifetimeTooLong) }
        guard !access.revoked.contains(claims.jti) else { return refuse(.emergencyRevoked) }
        guard let user = users[claims.sub] else { return refuse(.userNotFound) }
        guard user.attribute.enabled else { return refuse(.userDisabled) }
        var decision = Decision(outcome: .authenticated(user), tokenName: nil)
        decision.emergency = use
        decision.session = SessionIdentity(
            credential: .emergency(jti: claims.jti, kid: kid, key: key.publicKeyBytes), user: user.attribute.name,
            groups: user.attribute.groups, deadline: Timestamp(seconds: claims.exp + leeway))
        return decision
    }
}
