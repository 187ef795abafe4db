import Foundation

/// A `Secret` with all its entries decoded (`data` from base64, `stringData` as is and winning over
/// `data`, as the API folds it) — for the emergency-access Secret, whose entries are all read.
public struct OpaqueSecret: Decodable, Sendable {
    public var metadata: ObjectMeta
    public var entries: [String: [UInt8]]

    public var name: String { metadata.name }

    public init(metadata: ObjectMeta, entries: [String: [UInt8]]) {
        self.metadata = metadata
        self.entries = entries
    }

    private enum CodingKeys: String, CodingKey { case metadata, data, stringData }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta(name: "")
        var entries: [String: [UInt8]] = [:]
        for (key, value) in try container.decodeIfPresent([String: String].self, forKey: .data) ?? [:] {
            guard let decoded = GoBase64.decodePadded(value.utf8) else {
                throw RecordFieldError(field: "data.\(key)", problem: "not valid base64")
            }
            entries[key] = decoded
        }
        for (key, value) in try container.decodeIfPresent([String: String].self, forKey: .stringData) ?? [:] {
            entries[key] = Array(value.utf8)
        }
        self.entries = entries
    }
}

extension EmergencyAccess {
    /// The emergency settings of `secret`.
    public init(secret: OpaqueSecret, fallbackVersion: String) throws(ParseError) {
        try self.init(secretData: secret.entries, version: secret.metadata.resourceVersion ?? fallbackVersion)
    }
}
