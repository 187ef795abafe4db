import Logging
import RancherAuth
import Synchronization

/// One line per review decision: time, token name (the public half of the credential, when it can
/// be one: ObjectName.forLog), user, result, reason, `duration_ms` and `source` (the client's
/// `ip:port`), the same names and formats as the proxy's per-request line. Never a secret or a hash.
///
/// Identical decisions (same token, result, reason and source) within `window` are folded: the
/// next line that is written carries `repeated=N`, so a client hammering a refused token cannot
/// flood the log. Refusals are `info`, not `error`: they are answers, not faults.
public final class AuditLog: Sendable {
    let logger: Logger
    let enabled: Bool
    let window: Duration
    /// The folding state, split into shards by line key so that reviews on different event loops
    /// do not wait for one lock.
    private final class Shard: Sendable {
        let recent = Mutex<[String: (last: ContinuousClock.Instant, suppressed: Int)]>([:])
    }

    private let shards: [Shard] = (0..<16).map { _ in Shard() }

    public init(logger: Logger, enabled: Bool = true, window: Duration = .seconds(10)) {
        self.logger = logger
        self.enabled = enabled
        self.window = window
    }

    func record(_ decision: Decision, source: String, duration: Duration, cached: Bool) {
        guard enabled else { return }
        let host = Self.host(of: source)
        let result = decision.isAuthenticated ? "authenticated" : "refused"
        let reason = decision.refusalReason?.rawValue ?? "none"
        // A client-chosen name is told only when it can be a record's name (ObjectName.forLog); a
        // jti is told only from a token whose signature verified, and is a Secret key's characters.
        let token = decision.tokenName.map(ObjectName.forLog) ?? decision.emergency?.jti.map { "emergency:\($0)" } ?? "-"
        // `guessing` is part of the key, so the first refusal that turns it on is written.
        let key = "\(token)|\(result)|\(reason)|\(host)|\(decision.guessing)"
        let now = ContinuousClock.now
        let shard = shards[Int(UInt(bitPattern: key.hashValue) % UInt(shards.count))]
        let repeated: Int? = shard.recent.withLock { recent in
            if let entry = recent[key], entry.last.duration(to: now) < window {
                recent[key] = (entry.last, entry.suppressed + 1)
                return nil
            }
            if recent.count > 1_000 { recent.removeAll() }
            let suppressed = recent[key]?.suppressed ?? 0
            recent[key] = (now, 0)
            return suppressed
        }
        guard let repeated else { return }
        var metadata: Logger.Metadata = [
            "result": "\(result)", "reason": "\(reason)", "token": "\(token)", "source": "\(source)",
            "duration_ms": "\(duration.logMilliseconds)",
        ]
        if case .authenticated(let user) = decision.outcome { metadata["user"] = "\(user.attribute.name)" }
        if let algorithm = decision.hashAlgorithm {
            metadata["hash"] = "\(algorithm.rawValue)"
            metadata["verification"] = cached ? "cached" : "hashed"
        }
        if let emergency = decision.emergency {
            // Emergency use is always worth a look: which signed token, which key, and the reason
            // its issuer gave (never the token or its signature).
            metadata["emergency"] = "true"
            if let jti = emergency.jti { metadata["jti"] = "\(jti)" }
            if let kid = emergency.kid { metadata["kid"] = "\(kid)" }
            if let reason = emergency.reason { metadata["emergency_reason"] = "\(reason)" }
        }
        // Many wrong secrets for this name lately (FailureCounter): someone may be guessing.
        if decision.guessing { metadata["guessing"] = "true" }
        if repeated > 0 { metadata["repeated"] = "\(repeated)" }
        logger.info("review", metadata: metadata)
    }

    /// A client-chosen value as a log line may hold it: at most `limit` bytes (cut at a character
    /// boundary, the cut said). Escaping is the log handler's.
    public static func bounded(_ text: some StringProtocol, to limit: Int = 512) -> String {
        guard text.utf8.count > limit else { return String(text) }
        var cut = ""
        for character in text {
            guard cut.utf8.count + character.utf8.count <= limit else { break }
            cut.append(character)
        }
        return cut + "…(\(text.utf8.count) bytes)"
    }

    /// `1.2.3.4:5678` → `1.2.3.4`; `[::1]:5678` → `[::1]`.
    static func host(of source: String) -> Substring {
        guard let colon = source.lastIndex(of: ":"), !source.hasSuffix("]") else { return source[...] }
        return source[..<colon]
    }
}
