import Foundation
import RancherAuth
import Yams

/// A problem with one file of a records directory. The message names the file, the line and
/// the field, and never quotes the file's content (it may hold hashes).
public struct RecordProblem: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var message: String

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

/// Reads ClusterAuthToken, ClusterUserAttribute, Secret and ConfigMap manifests (YAML or JSON,
/// multi-document, or `kind: List`) from the files of one directory.
///
/// Failing closed: a file with any problem contributes no records at all, so that a botched
/// edit meant to disable a token cannot leave the old, enabled record serving. A record defined in
/// two files is dropped from both. Objects of other kinds or namespaces are ignored.
public struct RecordsDirectory: Sendable {
    public let path: String
    public let namespace: String

    public static let fileExtensions: Set<String> = ["yaml", "yml", "json"]

    /// The name of the emergency-access Secret (``EmergencyAccess``), read whole when present.
    public let emergencySecretName: String

    public init(path: String, namespace: String, emergencySecretName: String = EmergencyAccess.defaultSecretName) {
        self.path = path
        self.namespace = namespace
        self.emergencySecretName = emergencySecretName
    }

    public struct Load: Sendable {
        public var tokens: [ClusterAuthToken] = []
        public var users: [ClusterUserAttribute] = []
        public var hashSecrets: [HashSecret] = []
        public var refreshConfigMap: RefreshConfigMap?
        public var emergency: EmergencyAccess?
        public var problems: [RecordProblem] = []
        public var files: [String] = []

        public var recordCount: Int { tokens.count + users.count + hashSecrets.count + (refreshConfigMap == nil ? 0 : 1) }

        /// The records as a snapshot. Manifests carry no resourceVersion, so records without one get
        /// `revision`: a reload changes every version, which invalidates remembered verifications.
        public func snapshot(revision: String = "records") -> RecordSnapshot {
            func versioned(_ metadata: ObjectMeta) -> ObjectMeta {
                var metadata = metadata
                if metadata.resourceVersion == nil { metadata.resourceVersion = revision }
                return metadata
            }
            var tokens = self.tokens
            var users = self.users
            var hashSecrets = self.hashSecrets
            for index in tokens.indices { tokens[index].metadata = versioned(tokens[index].metadata) }
            for index in users.indices { users[index].metadata = versioned(users[index].metadata) }
            for index in hashSecrets.indices { hashSecrets[index].metadata = versioned(hashSecrets[index].metadata) }
            return RecordSnapshot(
                tokens: tokens, users: users, hashSecrets: hashSecrets, refreshPeriod: refreshConfigMap?.period ?? .disabled,
                emergency: emergency)
        }
    }

    public struct DirectoryError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The record files, sorted by name: regular files (or links to them) with a YAML or JSON
    /// extension, not hidden (editors and `token create` write dot-files and rename them in place).
    public func recordFiles() throws(DirectoryError) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DirectoryError(description: "records directory \(path) does not exist or is not a directory")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw DirectoryError(description: "cannot list records directory \(path): \(error.localizedDescription)")
        }
        return names.filter { name in
            guard !name.hasPrefix("."), let dot = name.lastIndex(of: ".") else { return false }
            return Self.fileExtensions.contains(String(name[name.index(after: dot)...]).lowercased())
        }.sorted()
    }

    /// The fingerprints of every record file (see ``FileFingerprint``): any change triggers a reload.
    public func fingerprint() -> [String] {
        guard let files = try? recordFiles() else { return ["<unreadable>"] }
        return files.map { FileFingerprint.of((path as NSString).appendingPathComponent($0)) }
    }

    public func load() throws(DirectoryError) -> Load {
        var load = Load()
        var seen: [String: String] = [:]  // "Kind/name" -> "file:line"
        var duplicates: Set<String> = []
        var perFile: [(file: String, records: FileRecords)] = []
        for name in try recordFiles() {
            load.files.append(name)
            let records = parseFile(named: name)
            if !records.problems.isEmpty {
                load.problems.append(contentsOf: records.problems)
                continue
            }
            for (key, line) in records.keys {
                let location = "\(name):\(line)"
                if let first = seen[key] {
                    duplicates.insert(key)
                    load.problems.append(
                        RecordProblem(file: name, line: line, message: "\(key) is also defined at \(first); both are ignored"))
                } else {
                    seen[key] = location
                }
            }
            perFile.append((name, records))
        }
        for (_, records) in perFile {
            load.tokens += records.tokens.filter { !duplicates.contains("ClusterAuthToken/\($0.name)") }
            load.users += records.users.filter { !duplicates.contains("ClusterUserAttribute/\($0.name)") }
            load.hashSecrets += records.hashSecrets.filter { !duplicates.contains("Secret/\($0.name)") }
            if let configMap = records.refreshConfigMap, !duplicates.contains("ConfigMap/\(configMap.metadata.name)") {
                load.refreshConfigMap = configMap
            }
            if let emergency = records.emergency, !duplicates.contains("Secret/\(emergencySecretName)") {
                load.emergency = emergency
            }
        }
        return load
    }

    public struct FileRecords: Sendable {
        public var tokens: [ClusterAuthToken] = []
        public var users: [ClusterUserAttribute] = []
        public var hashSecrets: [HashSecret] = []
        public var refreshConfigMap: RefreshConfigMap?
        public var emergency: EmergencyAccess?
        var keys: [(String, Int)] = []
        public var problems: [RecordProblem] = []
    }

    public func parseFile(named name: String) -> FileRecords {
        var records = FileRecords()
        let fullPath = (path as NSString).appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: fullPath) else {
            records.problems.append(RecordProblem(file: name, line: nil, message: "cannot be read"))
            return records
        }
        guard let text = String(data: data, encoding: .utf8) else {
            records.problems.append(RecordProblem(file: name, line: nil, message: "is not UTF-8 text"))
            return records
        }
        do {
            // The sequence parses lazily and keeps a syntax error in `error` rather than throwing it.
            // Each document is decoded as soon as it is composed, so only one document's node tree
            // exists at a time: holding all of them (~4 KB per object) left a 10,000-token file's
            // ~50 MiB of freed nodes resident, pinned by the records allocated among them. Records
            // decoded before a syntax error are dropped with the rest of the file below.
            var sequence = try Yams.compose_all(yaml: text)
            while let document = sequence.next() {
                if case .scalar(let scalar) = document, scalar.string.isEmpty || scalar.tag == .init(.null) { continue }
                decodeObject(document, file: name, into: &records)
            }
            if let error = sequence.error { throw error }
        } catch {
            // A file with any problem contributes nothing (fail closed).
            return FileRecords(problems: [Self.syntaxProblem(error, file: name)])
        }
        return records
    }

    private func decodeObject(_ node: Node, file: String, into records: inout FileRecords) {
        let line = node.mark?.line
        let decoder = YAMLDecoder()
        let header: ObjectHeader
        do {
            guard case .mapping = node else { throw RecordFieldError(field: "document", problem: "is not a mapping") }
            header = try decoder.decode(ObjectHeader.self, from: node)
        } catch {
            records.problems.append(Self.decodingProblem(error, node: node, file: file, what: "object"))
            return
        }
        // `kubectl get … -o yaml` writes `kind: List`; typed lists (`ClusterAuthTokenList`) work the same.
        if header.kind.hasSuffix("List") {
            guard case .mapping(let mapping) = node, let items = mapping["items"] else { return }
            guard case .sequence(let sequence) = items else {
                records.problems.append(RecordProblem(file: file, line: items.mark?.line, message: "items must be a list"))
                return
            }
            for item in sequence { decodeObject(item, file: file, into: &records) }
            return
        }
        let objectName = header.metadata?.name ?? ""
        let what = "\(header.kind) \(objectName.isEmpty ? "(unnamed)" : objectName)"
        guard let kind = ManifestKind(apiVersion: header.apiVersion, kind: header.kind) else { return }
        if let objectNamespace = header.metadata?.namespace, !objectNamespace.isEmpty, objectNamespace != namespace {
            return
        }
        if kind == .configMap && objectName != RefreshPeriod.configMapName { return }
        guard !objectName.isEmpty else {
            records.problems.append(RecordProblem(file: file, line: line, message: "\(header.kind) has no metadata.name"))
            return
        }
        do {
            switch kind {
            case .clusterAuthToken: records.tokens.append(try decoder.decode(ClusterAuthToken.self, from: node))
            case .clusterUserAttribute: records.users.append(try decoder.decode(ClusterUserAttribute.self, from: node))
            case .secret where objectName == emergencySecretName:
                let secret = try decoder.decode(OpaqueSecret.self, from: node)
                do {
                    records.emergency = try EmergencyAccess(secret: secret, fallbackVersion: "records")
                } catch {
                    records.problems.append(
                        RecordProblem(file: file, line: line, message: "emergency Secret \(objectName) cannot be used: \(error.description)"))
                    return
                }
            case .secret: records.hashSecrets.append(try decoder.decode(HashSecret.self, from: node))
            case .configMap: records.refreshConfigMap = try decoder.decode(RefreshConfigMap.self, from: node)
            }
            records.keys.append(("\(header.kind)/\(objectName)", line ?? 0))
        } catch {
            records.problems.append(Self.decodingProblem(error, node: node, file: file, what: what))
        }
    }

    /// The kinds of manifest a records directory may hold (not ``KubeAPIAuth/RecordKind``, the API's collections).
    enum ManifestKind {
        case clusterAuthToken, clusterUserAttribute, secret, configMap

        init?(apiVersion: String, kind: String) {
            switch (apiVersion, kind) {
            case ("cluster.cattle.io/v3", "ClusterAuthToken"): self = .clusterAuthToken
            case ("cluster.cattle.io/v3", "ClusterUserAttribute"): self = .clusterUserAttribute
            case ("v1", "Secret"): self = .secret
            case ("v1", "ConfigMap"): self = .configMap
            default: return nil
            }
        }
    }

    /// Syntax errors keep libyaml's position and problem but drop its snippet of the file.
    static func syntaxProblem(_ error: any Error, file: String) -> RecordProblem {
        guard let yamlError = error as? YamlError else {
            return RecordProblem(file: file, line: nil, message: "is not valid YAML")
        }
        switch yamlError {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let prefix = context.map { "\($0.text) " } ?? ""
            return RecordProblem(file: file, line: mark.line, message: "invalid YAML: \(prefix)\(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return RecordProblem(
                file: file, line: context.mark.line,
                message: "invalid YAML: duplicate keys \(duplicates.sorted().joined(separator: ", "))")
        default:
            return RecordProblem(file: file, line: nil, message: "invalid YAML")
        }
    }

    /// Type errors name the field and its line; the offending value is never quoted.
    static func decodingProblem(_ error: any Error, node: Node, file: String, what: String) -> RecordProblem {
        var path: [String] = []
        var detail = "cannot be read"
        switch error {
        case let fieldError as RecordFieldError:
            path = fieldError.field.split(separator: ".").map(String.init)
            detail = fieldError.problem
        case DecodingError.typeMismatch(let type, let context):
            path = context.codingPath.map(\.stringValue)
            detail = "expected \(Self.typeName(type))"
        case DecodingError.valueNotFound(let type, let context):
            path = context.codingPath.map(\.stringValue)
            detail = "expected \(Self.typeName(type)), found null"
        case DecodingError.dataCorrupted(let context):
            path = context.codingPath.map(\.stringValue)
            detail = "invalid value"
        case DecodingError.keyNotFound(let key, let context):
            path = context.codingPath.map(\.stringValue) + [key.stringValue]
            detail = "is missing"
        default:
            break
        }
        let field = path.isEmpty ? "" : " field \(path.joined(separator: "."))"
        let line = Self.node(at: path, in: node)?.mark?.line ?? node.mark?.line
        return RecordProblem(file: file, line: line, message: "\(what):\(field) \(detail)")
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Bool.Type: return "a boolean"
        case is String.Type: return "a string"
        case is [String].Type: return "a list of strings"
        default: return "\(type)".contains("Dictionary") ? "a mapping" : "\(type)"
        }
    }

    private static func node(at path: [String], in root: Node) -> Node? {
        var current = root
        for component in path {
            switch current {
            case .mapping(let mapping):
                guard let next = mapping[component] else { return current }
                current = next
            case .sequence(let sequence):
                guard let index = Int(component.replacing("Index ", with: "")), index < sequence.count else { return current }
                current = sequence[index]
            default:
                return current
            }
        }
        return current
    }
}
