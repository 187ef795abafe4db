import Foundation

/// ConfigMap `auth-provider-refresh-debounce-seconds`: how long after a user's `lastRefresh` the
/// service asks Rancher to refresh the user's groups (spec §2.7).
public enum RefreshPeriod: Sendable, Hashable {
    case disabled
    /// The period in nanoseconds (Go `time.Duration`).
    case enabled(nanoseconds: Int64)

    public static let configMapName = "auth-provider-refresh-debounce-seconds"

    /// Reads the ConfigMap's `value` like Go's `getRefreshPeriod`: `strconv.ParseInt(v, 10, 64)` seconds;
    /// missing, empty or unparsable ⇒ disabled; the seconds-to-nanoseconds product wraps like Go's
    /// `time.Duration` arithmetic, and a negative result is disabled.
    public init(configMapValue value: String?) {
        guard let value, let seconds = GoStrconv.parseInt(value.utf8) else {
            self = .disabled
            return
        }
        let nanoseconds = seconds &* 1_000_000_000
        self = nanoseconds < 0 ? .disabled : .enabled(nanoseconds: nanoseconds)
    }
}

/// The refresh ConfigMap as a record.
public struct RefreshConfigMap: Codable, Sendable {
    public var metadata: ObjectMeta
    public var period: RefreshPeriod

    private enum CodingKeys: String, CodingKey { case metadata, data }

    let value: String?

    public init(metadata: ObjectMeta, value: String?) {
        self.metadata = metadata
        self.period = RefreshPeriod(configMapValue: value)
        self.value = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(value.map { ["value": $0] } ?? [:], forKey: .data)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let data = try container.decodeIfPresent([String: String?].self, forKey: .data) ?? [:]
        self.init(
            metadata: try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta(name: ""),
            value: data["value"] ?? nil)
    }
}
