import Foundation
import RancherAuth

extension DiagnosisReport {
    /// Lists longer than this are cut in the text (`-o json` has them all).
    static let maxListed = 20

    /// The report for a person: sections, one line per check, what fixes each failure.
    public var text: String {
        var out: [String] = []
        out.append("kube-api-auth diagnose: \(server), namespace \(namespace), service account \(serviceAccount) (\(door))")
        if !api.isEmpty {
            out.append("")
            out.append("API")
            out += api.flatMap(Self.lines)
        }
        if !rights.isEmpty {
            out.append("")
            out.append("Rights of \(serviceAccount)")
            out += rights.flatMap(Self.lines)
        }
        if let emergency {
            out.append("")
            out.append("Emergency access (Secret \(emergency.secret))")
            out.append("  " + Self.describe(emergency))
        }
        if let census {
            out.append("")
            out.append("Records")
            out += RecordCensusService.summary(census).map { "  " + $0 }
            for (heading, severity) in [
                ("cannot authenticate", RecordFinding.Severity.problem), ("refused by their state", .state), ("nothing refers to them", .unused),
            ] {
                let findings = census.findings.filter { $0.severity == severity }
                guard !findings.isEmpty else { continue }
                out.append("  \(heading):")
                for finding in findings.prefix(Self.maxListed) {
                    out.append(
                        "    \(finding.kind.rawValue) \(ObjectName.forLog(finding.name)): \(finding.reason.rawValue)\(finding.detail.map { " (\($0))" } ?? "")"
                    )
                }
                if findings.count > Self.maxListed { out.append("    … and \(findings.count - Self.maxListed) more (-o json lists all)") }
            }
        }
        if let token {
            out.append("")
            out += Self.lines(token)
        }
        out.append("")
        out.append(problems.isEmpty ? "No problems found." : "\(problems.count) problem(s) found:")
        out += problems.map { "  - " + $0 }
        return out.joined(separator: "\n") + "\n"
    }

    /// The report for a script.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}\n" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static func lines(_ check: DiagnosisCheck) -> [String] {
        var lines = ["  \(check.ok ? "ok  " : "FAIL") \(check.check)\(check.detail.map { ": \($0)" } ?? "")"]
        if let fix = check.fix { lines.append("       fix: \(fix)") }
        return lines
    }

    static func describe(_ emergency: EmergencyState) -> String {
        guard emergency.present else { return "off: no such Secret (emergency access is not set up)" }
        if let problem = emergency.problem { return "off: the Secret cannot be used: \(problem)" }
        let keys = emergency.keys.map { "\($0.kid) (\($0.algorithm))" }.joined(separator: ", ")
        var line = "on: \(emergency.keys.count) key(s): \(keys)"
        if let audience = emergency.audience { line += "; audience \(audience)" }
        if let lifetime = emergency.maxLifetimeSeconds { line += "; tokens live at most \(lifetime) s" }
        return line + "; \(emergency.revokedTokenIDs) revoked token id(s)"
    }

    static func lines(_ token: TokenDiagnosis) -> [String] {
        var lines = ["Token \(ObjectName.forLog(token.name))"]
        if !token.nameValid { lines.append("  name: not a Kubernetes object name; Rancher never writes one") }
        guard let record = token.token else {
            lines.append("  record: no ClusterAuthToken of that name (deleted, never synced, or ACE is off for this cluster)")
            lines.append("  answer for the correct secret: refused (\(token.answer.reason ?? "token_not_found"))")
            return lines
        }
        var state = record.enabled ? "enabled" : "DISABLED"
        if record.expiresAt.isEmpty {
            state += ", never expires"
        } else if !record.expiryReadable {
            state += ", expiresAt is not an RFC 3339 time (refused)"
        } else if let seconds = record.expiresInSeconds {
            state +=
                seconds >= 0
                ? ", expires \(record.expiresAt) (in \(duration(seconds)))" : ", EXPIRED at \(record.expiresAt) (\(duration(-seconds)) ago)"
        }
        lines.append("  record: \(state); user \(record.userName.isEmpty ? "(none)" : record.userName)")
        lines.append("  last used: \(record.lastUsedAt ?? "never recorded")")
        if let hash = token.hash {
            switch (hash.source, hash.algorithm, hash.problem) {
            case ("none", _, _): lines.append("  hash: MISSING (no Secret \(token.name), no legacy hash field)")
            case (let source, let algorithm?, _):
                lines.append(
                    "  hash: \(algorithm), from \(source == "secret" ? "Secret \(token.name)" : "the token's legacy hash field (migrated on first use)")"
                )
            case (let source, nil, let problem):
                lines.append("  hash: UNUSABLE in \(source == "secret" ? "Secret \(token.name)" : "the legacy hash field"): \(problem ?? "invalid")")
            }
        }
        if let user = token.user {
            var line = "  user \(user.name): \(user.enabled ? "enabled" : "DISABLED"), groups [\(user.groups.joined(separator: ", "))]"
            line += ", needsRefresh \(user.needsRefresh)"
            if let lastRefresh = user.lastRefresh { line += ", lastRefresh \(lastRefresh)" }
            lines.append(line)
        } else {
            lines.append("  user: MISSING (no ClusterUserAttribute \(record.userName))")
        }
        let answer = token.answer
        if answer.authenticated {
            lines.append(
                "  answer for the correct secret: authenticated as \(answer.username ?? "") with groups [\((answer.groups ?? []).joined(separator: ", "))]"
            )
        } else {
            lines.append("  answer for the correct secret: refused, \(answer.error ?? "no error text") (\(answer.reason ?? ""))")
        }
        return lines
    }

    static func duration(_ seconds: Int64) -> String {
        let days = seconds / 86_400, hours = seconds % 86_400 / 3600, minutes = seconds % 3600 / 60
        if days > 0 { return "\(days)d \(hours)h" }
        if hours > 0 { return "\(hours)h \(minutes)m" }
        if minutes > 0 { return "\(minutes)m \(seconds % 60)s" }
        return "\(seconds)s"
    }
}
