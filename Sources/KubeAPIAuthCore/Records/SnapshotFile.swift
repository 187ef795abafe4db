import Crypto
import Foundation
import RancherAuth

#if canImport(Glibc)
import Glibc
#endif

/// The last-known-good records on disk, so that a restart while the API server is unreachable
/// still authenticates.
///
/// Format: a header line `kube-api-auth-snapshot 1`, a line `sha256 <hex>` with the digest of the
/// body, then the body: JSON with the namespace, the time written, the four kinds of records in
/// their Kubernetes shape, and the emergency Secret's entries. A file whose header, digest or body does not check out is rejected
/// whole. It holds token hashes, like the Secrets it mirrors: mode 0600, owned by the service's user.
public enum SnapshotFile {
    static let header = "kube-api-auth-snapshot 1"

    public struct Contents: Codable, Sendable {
        public var namespace: String
        public var writtenAt: String
        public var clusterauthtokens: [ClusterAuthToken]
        public var clusteruserattributes: [ClusterUserAttribute]
        public var secrets: [HashSecret]
        public var configmaps: [RefreshConfigMap]
        /// The emergency Secret's entries (public keys, audience, limit, revocations), when it was
        /// usable; absent in files written before emergency access existed.
        public var emergency: [String: String]?

        public init(namespace: String, writtenAt: Timestamp, snapshot: RecordSnapshot) {
            self.namespace = namespace
            self.writtenAt = RFC3339.format(writtenAt)
            clusterauthtokens = snapshot.tokens.values.sorted { $0.name < $1.name }
            clusteruserattributes = snapshot.users.values.map(\.attribute).sorted { $0.name < $1.name }
            secrets = snapshot.hashSecrets.values.sorted { $0.name < $1.name }
            configmaps = snapshot.refreshConfigMap.map { [$0] } ?? []
            emergency = snapshot.emergency?.entries.mapValues { String(decoding: $0, as: UTF8.self) }
        }

        public var writtenAtTime: Timestamp? { RFC3339.parse(writtenAt) }

        public func snapshot() -> RecordSnapshot {
            RecordSnapshot(
                tokens: RecordTable(clusterauthtokens),
                users: Dictionary(clusteruserattributes.map { ($0.name, UserRecord($0)) }, uniquingKeysWith: { _, last in last }),
                hashSecrets: RecordTable(secrets),
                refreshConfigMap: configmaps.first,
                emergency: emergency.flatMap { try? EmergencyAccess(secretData: $0.mapValues { Array($0.utf8) }, version: "snapshot") })
        }
    }

    public struct SnapshotError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func encode(_ contents: Contents) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = try encoder.encode(contents)
        let digest = SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
        return Data("\(header)\nsha256 \(digest)\n".utf8) + body
    }

    public static func decode(_ data: Data, namespace: String) throws(SnapshotError) -> Contents {
        let bytes = [UInt8](data)
        guard let first = bytes.firstIndex(of: 0x0A), String(decoding: bytes[..<first], as: UTF8.self) == header else {
            throw SnapshotError(description: "not a kube-api-auth snapshot (unknown header or version)")
        }
        let rest = bytes[(first + 1)...]
        guard let second = rest.firstIndex(of: 0x0A) else { throw SnapshotError(description: "truncated: no checksum line") }
        let checksumLine = String(decoding: rest[..<second], as: UTF8.self)
        let body = Data(rest[(second + 1)...])
        let digest = SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
        guard checksumLine == "sha256 \(digest)" else { throw SnapshotError(description: "checksum mismatch (truncated or modified)") }
        let contents: Contents
        do {
            contents = try JSONDecoder().decode(Contents.self, from: body)
        } catch {
            throw SnapshotError(description: "body cannot be read")
        }
        guard contents.namespace == namespace else {
            throw SnapshotError(description: "written for namespace \(contents.namespace), not \(namespace)")
        }
        return contents
    }

    public static func load(path: String, namespace: String) throws(SnapshotError) -> Contents {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SnapshotError(description: "cannot be read")
        }
        return try decode(data, namespace: namespace)
    }

    /// Writes atomically with mode 0600 (``AtomicFile``).
    public static func write(_ contents: Contents, to path: String) throws(SnapshotError) {
        let data: Data
        do {
            data = try encode(contents)
        } catch {
            throw SnapshotError(description: "cannot be encoded")
        }
        do {
            try AtomicFile.write(data, to: path)
        } catch {
            throw SnapshotError(description: error.description)
        }
    }
}
