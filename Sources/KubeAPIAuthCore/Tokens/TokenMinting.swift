import Foundation
import RancherAuth

/// A token minted the way Rancher mints kubeconfig tokens, with its three manifests.
public struct MintedToken: Sendable {
    public var name: String
    public var userID: String
    public var groups: [String]
    public var secret: String
    public var hash: String
    /// RFC 3339 UTC, or empty for a token that never expires.
    public var expiresAt: String

    /// What a client sends: `<tokenName>:<secret>`.
    public var bearerToken: String { "\(name):\(secret)" }
}

public enum TokenMinting {
    /// Rancher's alphabet for generated name suffixes and secrets (no vowels, no look-alikes).
    public static let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
    public static let secretLength = 54
    public static let nameSuffixLength = 5

    public struct MintError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Mints `kubeconfig-<user><5 chars>` with a 54-character secret, hashed with `algorithm`.
    public static func mint(
        user: String, groups: [String], lifetime: TokenLifetime, algorithm: HashAlgorithm, now: Timestamp
    ) throws(MintError) -> MintedToken {
        try validateName(user, what: "--user")
        var generator = SystemRandomNumberGenerator()
        func random(_ count: Int) -> String {
            String((0..<count).map { _ in alphabet.randomElement(using: &generator)! })
        }
        let name = "kubeconfig-\(user)\(random(nameSuffixLength))"
        try validateName(name, what: "token name")
        let secret = random(secretLength)
        let hash: String
        do {
            hash = try HashCreation.hash(secret: secret, algorithm: algorithm)
        } catch {
            throw MintError(description: "\(error)")
        }
        let expiresAt: String
        switch lifetime {
        case .unlimited: expiresAt = ""
        case .seconds(let seconds): expiresAt = RFC3339.format(Timestamp(seconds: now.seconds + seconds))
        }
        return MintedToken(name: name, userID: user, groups: groups, secret: secret, hash: hash, expiresAt: expiresAt)
    }

    /// Kubernetes object names (``ObjectName``).
    static func validateName(_ name: String, what: String) throws(MintError) {
        guard ObjectName.isValid(name) else {
            throw MintError(
                description: "\(what) \"\(name)\" is not a valid Kubernetes name (lowercase letters, digits, '-' and '.', "
                    + "starting and ending with a letter or digit, at most 253 characters)")
        }
    }
}

/// Renders the records as YAML manifests that `kubectl apply -f` and a records directory accept.
/// Strings are written as JSON strings, which are valid YAML double-quoted scalars.
public enum RecordManifests {
    public static func token(_ token: MintedToken, namespace: String) -> String {
        var yaml = """
            apiVersion: cluster.cattle.io/v3
            kind: ClusterAuthToken
            metadata:
              name: \(quote(token.name))
              namespace: \(quote(namespace))
            userName: \(quote(token.userID))
            enabled: true

            """
        if !token.expiresAt.isEmpty { yaml += "expiresAt: \(quote(token.expiresAt))\n" }
        yaml += """
            hash: ""
            ---
            apiVersion: v1
            kind: Secret
            metadata:
              name: \(quote(token.name))
              namespace: \(quote(namespace))
            type: Opaque
            data:
              hash: \(quote(Data(token.hash.utf8).base64EncodedString()))

            """
        return yaml
    }

    public static func user(id: String, groups: [String], namespace: String) -> String {
        let groupList = groups.map(quote).joined(separator: ", ")
        return """
            apiVersion: cluster.cattle.io/v3
            kind: ClusterUserAttribute
            metadata:
              name: \(quote(id))
              namespace: \(quote(namespace))
            groups: [\(groupList)]
            enabled: true
            needsRefresh: false

            """
    }

    static func quote(_ value: String) -> String {
        var bytes: [UInt8] = []
        JSONWriter.appendString(value, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `contents` to `path` with ``AtomicFile``: mode 0600 (the file holds a hash), synced,
    /// and renamed into place, so a watcher never reads a half-written file.
    public static func writeAtomically(_ contents: String, to path: String) throws(AtomicFile.WriteError) {
        try AtomicFile.write(Data(contents.utf8), to: path)
    }
}
