import Foundation
import RancherAuth
import Synchronization
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

    /// Each file's records as last parsed, by its fingerprint: a reload parses only files that changed.
    private let parsed = ParsedFiles()

    private final class ParsedFiles: Sendable {
        let files = Mutex<[String: (fingerprint: String, records: FileRecords)]>([:])
        /// Files parsed so far (not taken from `files`), for tests.
        let count = Atomic<Int>(0)
    }

    /// How many files this directory has parsed (an unchanged file is not parsed again).
    package var filesParsed: Int { parsed.count.load(ordering: .relaxed) }

    /// The files whose records' places (``FileRecords/keys``) are kept until the next load.
    package var filesKeepingPlaces: [String] {
        parsed.files.withLock { files in files.filter { $0.value.records.keys != nil }.map(\.key).sorted() }
    }

    /// How much of a JSON file is read at a time (tests make it small, to cut documents anywhere).
    package let readChunkSize: Int

    public init(path: String, namespace: String, emergencySecretName: String = EmergencyAccess.defaultSecretName) {
        self.init(path: path, namespace: namespace, emergencySecretName: emergencySecretName, readChunkSize: 1 << 20)
    }

    package init(path: String, namespace: String, emergencySecretName: String = EmergencyAccess.defaultSecretName, readChunkSize: Int) {
        self.path = path
        self.namespace = namespace
        self.emergencySecretName = emergencySecretName
        self.readChunkSize = max(1, readChunkSize)
    }

    public struct Load: Sendable {
        /// Tokens and hash Secrets as the snapshot keeps them (compact tables, see ``RecordTable``).
        public var tokens = RecordTable<ClusterAuthToken>()
        public var users: [ClusterUserAttribute] = []
        public var hashSecrets = RecordTable<HashSecret>()
        public var refreshConfigMap: RefreshConfigMap?
        public var emergency: EmergencyAccess?
        public var problems: [RecordProblem] = []
        public var files: [String] = []
        /// Files that could not be read at all (an I/O error, a link to nothing): unlike a file
        /// whose content is wrong, such a file may read fine a moment later, so the source reads it
        /// again at its next poll instead of waiting for it to change.
        public var unreadableFiles: [String] = []

        public init() {}

        public var recordCount: Int { tokens.count + users.count + hashSecrets.count + (refreshConfigMap == nil ? 0 : 1) }

        /// The records as a snapshot. ``RecordsDirectory/load()`` gives each file's records a version
        /// of the file's own (``RecordsDirectory/revision(of:)``); a record still without one (a
        /// `Load` built by hand) gets `revision`. Records that have one are not copied.
        public func snapshot(revision: String = "records") -> RecordSnapshot {
            var tokens = self.tokens
            var users = self.users
            var hashSecrets = self.hashSecrets
            RecordsDirectory.stamp(&tokens, revision: revision)
            RecordsDirectory.stamp(&users, revision: revision)
            RecordsDirectory.stamp(&hashSecrets, revision: revision)
            return RecordSnapshot(
                tokens: tokens, users: Dictionary(users.map { ($0.name, UserRecord($0)) }, uniquingKeysWith: { _, last in last }),
                hashSecrets: hashSecrets, refreshConfigMap: refreshConfigMap, emergency: emergency)
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
        var files: [(file: String, records: FileRecords)] = []
        let names = try recordFiles()
        var current: [String: (fingerprint: String, records: FileRecords)] = [:]
        let previous = parsed.files.withLock { $0 }
        for name in names {
            load.files.append(name)
            // Taken before reading: a change made while the file is read shows at the next poll.
            let fingerprint = FileFingerprint.of(filePath(name))
            let records: FileRecords
            if let known = previous[name], known.fingerprint == fingerprint {
                records = known.records
            } else {
                var fresh = parseFile(named: name, revision: Self.revision(of: fingerprint))
                fresh.tokens.shrinkToFit()
                fresh.hashSecrets.shrinkToFit()
                fresh.keys?.shrinkToFit()
                records = fresh
                parsed.count.add(1, ordering: .relaxed)
            }
            if records.unreadable {
                load.unreadableFiles.append(name)  // not remembered: read again next time
            } else {
                current[name] = (fingerprint, records)
            }
            files.append((name, records))
        }
        // A file with a problem contributes nothing, its keys included.
        let clean = files.filter { $0.records.problems.isEmpty }
        var placesRead: [String: RecordKeys] = [:]
        let duplicates = Self.duplicates(among: clean, emergencySecretName: emergencySecretName) { index in
            // A file taken from the last load whose records are now defined elsewhere too: its
            // places, read again. Kept for the next load only if the file is still the one parsed.
            let name = clean[index].file
            let fingerprint = FileFingerprint.of(filePath(name))
            let records = parseFile(named: name, revision: Self.revision(of: fingerprint))
            parsed.count.add(1, ordering: .relaxed)
            if fingerprint == current[name]?.fingerprint, records.problems.isEmpty, var keys = records.keys {
                keys.shrinkToFit()
                placesRead[name] = keys
            }
            return records.keys
        }
        // The places are kept only for the files that need them to word a problem.
        for (index, (name, _)) in clean.enumerated() where current[name] != nil {
            if !duplicates.involved.contains(index) {
                current[name]?.records.keys = nil
            } else if let keys = placesRead[name] {
                current[name]?.records.keys = keys
            }
        }
        for (name, records) in files where !records.problems.isEmpty { current[name]?.records.keys = nil }
        parsed.files.withLock { $0 = current }
        var cleanIndex = 0
        for (_, records) in files {
            if !records.problems.isEmpty {
                load.problems.append(contentsOf: records.problems)
            } else {
                load.problems.append(contentsOf: duplicates.problems[cleanIndex] ?? [])
                cleanIndex += 1
            }
        }
        let dropped = duplicates.dropped
        for (_, records) in clean {
            Self.merge(records.tokens, into: &load.tokens, kind: RecordSlot.token.kind, dropping: dropped)
            load.users += records.users.filter { !dropped.contains("\(RecordSlot.user.kind)/\($0.name)") }
            Self.merge(records.hashSecrets, into: &load.hashSecrets, kind: RecordSlot.hashSecret.kind, dropping: dropped)
            if let configMap = records.refreshConfigMap, !dropped.contains("\(RecordSlot.refreshConfigMap.kind)/\(configMap.metadata.name)") {
                load.refreshConfigMap = configMap
            }
            if let emergency = records.emergency, !dropped.contains("\(RecordSlot.emergency.kind)/\(emergencySecretName)") {
                load.emergency = emergency
            }
        }
        return load
    }

    private func filePath(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// What a file's record is, for finding records defined more than once (as "Kind/name").
    enum RecordSlot: UInt8 {
        case token, hashSecret, user, refreshConfigMap, emergency

        var kind: String {
            switch self {
            case .token: "ClusterAuthToken"
            case .hashSecret, .emergency: "Secret"
            case .user: "ClusterUserAttribute"
            case .refreshConfigMap: "ConfigMap"
            }
        }
    }

    /// The records that the clean `files` define more than once (in two of them, or twice in
    /// one), which none of them contributes; each occurrence after the first as a problem naming
    /// the first's place, by file index; and the files that hold such a record.
    ///
    /// Which records are dropped is decided from the records themselves (``definedMoreThanOnce(among:emergencySecretName:)``).
    /// Only then are places needed: a file's ``FileRecords/keys``, or, where a file taken from the
    /// last load no longer has them, `places(index)` (the file read again). Read again, a file
    /// may have changed; its places then word the problems, but never take a record off the list
    /// of those dropped, and a record they no longer place still gets a problem.
    package static func duplicates(
        among files: [(file: String, records: FileRecords)], emergencySecretName: String, places: (Int) -> RecordKeys?
    ) -> (problems: [Int: [RecordProblem]], dropped: Set<String>, involved: Set<Int>) {
        let defined = definedMoreThanOnce(among: files.map(\.records), emergencySecretName: emergencySecretName)
        guard !defined.isEmpty else { return ([:], [], []) }
        let involved = Set(defined.values.joined()).sorted()
        let placed = placedDuplicates(among: involved.map { (files[$0].file, files[$0].records.keys ?? places($0) ?? RecordKeys()) })
        var problems: [Int: [RecordProblem]] = [:]
        for (position, fileProblems) in placed.problems { problems[involved[position]] = fileProblems }
        for (key, holders) in defined.sorted(by: { $0.key < $1.key }) where !placed.keys.contains(key) {
            let file = holders.count > 1 ? holders[1] : holders[0]
            problems[file, default: []].append(
                RecordProblem(file: files[file].file, line: nil, message: "\(key) is defined more than once; every definition is ignored"))
        }
        return (problems, placed.keys.union(defined.keys), Set(involved))
    }

    /// Every "Kind/name" that `files` define more than once, with the indices of the files that
    /// define it (in order): two files' records compared through their tables' names, and the
    /// records a file defined twice (``FileRecords/repeated``, or two users of one name).
    ///
    /// Found by sorting one entry per record by a hash of its kind and name, then comparing the
    /// names of the records whose hashes meet: a dictionary of "Kind/name" strings for 210,000
    /// records took ~50 MB at the end of a load, most of its peak.
    static func definedMoreThanOnce(among files: [FileRecords], emergencySecretName: String) -> [String: [Int]] {
        struct Entry {
            var hash: Int
            var file: Int32
            var place: Int32
            var slot: RecordSlot
        }
        func hash(_ slot: RecordSlot, _ name: UnsafeRawBufferPointer) -> Int {
            var hasher = Hasher()
            hasher.combine(slot.kind)
            hasher.combine(bytes: name)
            return hasher.finalize()
        }
        func hash(_ slot: RecordSlot, _ name: String) -> Int {
            var name = name
            return name.withUTF8 { hash(slot, UnsafeRawBufferPointer($0)) }
        }
        var entries: [Entry] = []
        entries.reserveCapacity(files.reduce(0) { $0 + $1.tokens.count + $1.hashSecrets.count + $1.users.count + 2 })
        // Counts past 2^31 cannot come from files this service reads whole.
        for (index, records) in files.enumerated() {
            let file = Int32(truncatingIfNeeded: index)
            func add(_ slot: RecordSlot, _ place: Int, _ hash: Int) {
                entries.append(Entry(hash: hash, file: file, place: Int32(truncatingIfNeeded: place), slot: slot))
            }
            records.tokens.forEachName { place, name in add(.token, place, hash(.token, name)) }
            records.hashSecrets.forEachName { place, name in add(.hashSecret, place, hash(.hashSecret, name)) }
            for (place, user) in records.users.enumerated() { add(.user, place, hash(.user, user.name)) }
            if let configMap = records.refreshConfigMap { add(.refreshConfigMap, 0, hash(.refreshConfigMap, configMap.metadata.name)) }
            if records.emergency != nil { add(.emergency, 0, hash(.emergency, emergencySecretName)) }
        }
        func key(_ entry: Entry) -> String {
            let records = files[Int(entry.file)]
            let name: String
            switch entry.slot {
            case .token: name = records.tokens.name(at: Int(entry.place))
            case .hashSecret: name = records.hashSecrets.name(at: Int(entry.place))
            case .user: name = records.users[Int(entry.place)].name
            case .refreshConfigMap: name = records.refreshConfigMap?.metadata.name ?? ""
            case .emergency: name = emergencySecretName
            }
            return "\(entry.slot.kind)/\(name)"
        }
        entries.sort { ($0.hash, $0.file) < ($1.hash, $1.file) }
        var defined: [String: [Int]] = [:]
        var start = 0
        while start < entries.count {
            var end = start + 1
            while end < entries.count, entries[end].hash == entries[start].hash { end += 1 }
            if end - start > 1 {
                // Same hash: the same key, or (rarely) two keys whose hashes meet.
                var holders: [String: [Int]] = [:]
                for entry in entries[start..<end] { holders[key(entry), default: []].append(Int(entry.file)) }
                for (key, files) in holders where files.count > 1 { defined[key] = files }
            }
            start = end
        }
        for (index, records) in files.enumerated() {
            for key in records.repeated { defined[key, default: []].append(index) }
        }
        return defined.mapValues { Array(Set($0)).sorted() }
    }

    /// Where the records defined more than once among `files` are (each file's ``RecordKeys``):
    /// each occurrence after the first is a problem naming the first's place, by the index of its
    /// file; and every such "Kind/name".
    static func placedDuplicates(among files: [(file: String, keys: RecordKeys)]) -> (problems: [Int: [RecordProblem]], keys: Set<String>) {
        struct Entry {
            var hash: Int
            var file: Int32
            var index: Int32
        }
        var entries: [Entry] = []
        entries.reserveCapacity(files.reduce(0) { $0 + $1.keys.count })
        for (file, entry) in files.enumerated() {
            for index in 0..<entry.keys.count {
                entries.append(Entry(hash: entry.keys.hash(at: index), file: Int32(file), index: Int32(index)))
            }
        }
        entries.sort { ($0.hash, $0.file, $0.index) < ($1.hash, $1.file, $1.index) }
        // Occurrences after the first, by file and place in it, with the first's location.
        var later: [(file: Int32, index: Int32, first: Entry)] = []
        var start = 0
        while start < entries.count {
            var end = start + 1
            while end < entries.count, entries[end].hash == entries[start].hash { end += 1 }
            if end - start > 1 {
                // Same hash: group by the key itself (in file order, so the first of each is first).
                var firsts: [Entry] = []
                for entry in entries[start..<end] {
                    let keys = files[Int(entry.file)].keys
                    let isEntry = { (first: Entry) in
                        files[Int(first.file)].keys.sameKey(at: Int(first.index), as: keys, at: Int(entry.index))
                    }
                    if let first = firsts.first(where: isEntry) {
                        later.append((entry.file, entry.index, first))
                    } else {
                        firsts.append(entry)
                    }
                }
            }
            start = end
        }
        later.sort { ($0.file, $0.index) < ($1.file, $1.index) }
        var problems: [Int: [RecordProblem]] = [:]
        var keys: Set<String> = []
        for (file, index, first) in later {
            let fileKeys = files[Int(file)].keys
            let key = fileKeys.key(at: Int(index))
            let firstPlace = "\(files[Int(first.file)].file):\(files[Int(first.file)].keys.line(at: Int(first.index)))"
            keys.insert(key)
            problems[Int(file), default: []].append(
                RecordProblem(
                    file: files[Int(file)].file, line: fileKeys.line(at: Int(index)),
                    message: "\(key) is also defined at \(firstPlace); both are ignored"))
        }
        return (problems, keys)
    }

    /// One file's records. Tokens and Secrets go into tables as they are decoded (a file of
    /// 100,000 keeps no object per record); each gets the file's `revision` where it has no
    /// resourceVersion of its own.
    public struct FileRecords: Sendable {
        public var tokens = RecordTable<ClusterAuthToken>()
        public var users: [ClusterUserAttribute] = []
        public var hashSecrets = RecordTable<HashSecret>()
        public var refreshConfigMap: RefreshConfigMap?
        public var emergency: EmergencyAccess?
        /// Each record's "Kind/name" and line, in file order, made as the file is parsed. Between
        /// loads a file keeps them only while one of its records is defined more than once (they
        /// word that problem): the names are in the tables already, and for a file of 100,000
        /// tokens and their Secrets the places were ~5.6 MB, the whole of what a directory held
        /// above the API path after loading.
        package var keys: RecordKeys? = RecordKeys()
        /// Records given twice in this file where the later replaced the earlier (a token, a hash
        /// Secret, the refresh ConfigMap, the emergency Secret), as "Kind/name".
        var repeated: [String] = []
        public var problems: [RecordProblem] = []
        var revision: String?
        /// The file could not be read at all (see ``Load/unreadableFiles``).
        var unreadable = false

        init(revision: String? = nil) { self.revision = revision }

        init(problems: [RecordProblem]) { self.problems = problems }

        mutating func add(_ token: ClusterAuthToken) {
            if tokens.contains(token.name) { repeated.append("\(RecordSlot.token.kind)/\(token.name)") }
            tokens[token.name] = RecordsDirectory.stamped(token, revision)
        }

        mutating func add(_ user: ClusterUserAttribute) { users.append(RecordsDirectory.stamped(user, revision)) }

        mutating func add(_ secret: HashSecret) {
            if hashSecrets.contains(secret.name) { repeated.append("\(RecordSlot.hashSecret.kind)/\(secret.name)") }
            hashSecrets[secret.name] = RecordsDirectory.stamped(secret, revision)
        }

        mutating func add(_ configMap: RefreshConfigMap) {
            if refreshConfigMap != nil { repeated.append("\(RecordSlot.refreshConfigMap.kind)/\(configMap.metadata.name)") }
            refreshConfigMap = configMap
        }

        /// The emergency Secret's settings; `false`, with a problem that says why, when it cannot be used.
        mutating func addEmergency(_ secret: OpaqueSecret, name: String, file: String, line: Int?) -> Bool {
            do {
                let access = try EmergencyAccess(secret: secret, fallbackVersion: "records")
                if emergency != nil { repeated.append("\(RecordSlot.emergency.kind)/\(name)") }
                emergency = access
                return true
            } catch {
                problems.append(RecordProblem(file: file, line: line, message: "emergency Secret \(name) cannot be used: \(error.description)"))
                return false
            }
        }
    }

    /// The records of file `name`; with `revision`, the version each gets where it has none.
    public func parseFile(named name: String, revision: String? = nil) -> FileRecords {
        var records = FileRecords(revision: revision)
        let fullPath = (path as NSString).appendingPathComponent(name)
        // JSON documents first, a chunk of the file at a time (JSON that is not UTF-8 does not
        // parse, and the YAML path below says so).
        var unreadable = false
        switch readJSONDocuments(atPath: fullPath, file: name, revision: revision) {
        case .read(let records): return records
        case .notJSON: break
        case .unreadable: unreadable = true
        }
        guard !unreadable, let data = FileManager.default.contents(atPath: fullPath) else {
            records.problems.append(RecordProblem(file: name, line: nil, message: "cannot be read"))
            records.unreadable = true
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
        do {
            switch admit(header) {
            case .skip: return
            case .unnamed:
                records.problems.append(RecordProblem(file: file, line: line, message: "\(header.kind) has no metadata.name"))
                return
            case .clusterAuthToken: records.add(try decoder.decode(ClusterAuthToken.self, from: node))
            case .clusterUserAttribute: records.add(try decoder.decode(ClusterUserAttribute.self, from: node))
            case .emergencySecret:
                guard records.addEmergency(try decoder.decode(OpaqueSecret.self, from: node), name: objectName, file: file, line: line)
                else { return }
            case .hashSecret: records.add(try decoder.decode(HashSecret.self, from: node))
            case .refreshConfigMap: records.add(try decoder.decode(RefreshConfigMap.self, from: node))
            }
            records.keys?.append(kind: header.kind, name: objectName, line: line ?? 0)
        } catch {
            records.problems.append(Self.decodingProblem(error, node: node, file: file, what: what))
        }
    }

    /// What becomes of an object, by its header: one of the record kinds, skipped (another kind,
    /// another namespace, a ConfigMap other than the refresh setting), or a problem (no name).
    enum Admission {
        case skip, unnamed
        case clusterAuthToken, clusterUserAttribute, emergencySecret, hashSecret, refreshConfigMap
    }

    func admit(_ header: ObjectHeader) -> Admission {
        let objectName = header.metadata?.name ?? ""
        guard let kind = ManifestKind(apiVersion: header.apiVersion, kind: header.kind) else { return .skip }
        if let objectNamespace = header.metadata?.namespace, !objectNamespace.isEmpty, objectNamespace != namespace { return .skip }
        if kind == .configMap && objectName != RefreshPeriod.configMapName { return .skip }
        guard !objectName.isEmpty else { return .unnamed }
        switch kind {
        case .clusterAuthToken: return .clusterAuthToken
        case .clusterUserAttribute: return .clusterUserAttribute
        case .secret: return objectName == emergencySecretName ? .emergencySecret : .hashSecret
        case .configMap: return .refreshConfigMap
        }
    }

    /// The version a file's records get (manifests carry no resourceVersion): derived from the
    /// file's fingerprint, so a changed file's records get new versions — which invalidates the
    /// verifications remembered for them — and an unchanged file's keep theirs. Short enough to be
    /// stored inline, and one string shared by every record of the file.
    static func revision(of fingerprint: String) -> String {
        ContentVersion.of(["records file", fingerprint])
    }

    /// `record` with `revision` when it has no resourceVersion of its own.
    static func stamped<Record: VersionedRecord>(_ record: Record, _ revision: String?) -> Record {
        guard let revision, record.metadata.resourceVersion == nil else { return record }
        var record = record
        record.metadata.resourceVersion = revision
        return record
    }

    /// Gives `revision` to each record that has no resourceVersion (the others are not copied).
    static func stamp<Record: VersionedRecord>(_ records: inout [Record], revision: String) {
        for index in records.indices where records[index].metadata.resourceVersion == nil {
            records[index].metadata.resourceVersion = revision
        }
    }

    /// The same for a table (a ``Load`` built by hand; a directory's files are stamped as parsed).
    static func stamp<Record: VersionedRecord & TableRecord>(_ table: inout RecordTable<Record>, revision: String) {
        for (name, record) in table where record.metadata.resourceVersion == nil {
            table[name] = stamped(record, revision)
        }
    }

    /// Adds a file's records to the load's, without those defined twice. The first file's table is
    /// taken as it is when nothing of it is dropped (one file of 100,000 records is not copied).
    static func merge<Record: TableRecord>(
        _ records: RecordTable<Record>, into table: inout RecordTable<Record>, kind: String, dropping duplicates: Set<String>
    ) {
        if table.isEmpty, duplicates.isEmpty {
            table = records
            return
        }
        for (name, record) in records where !duplicates.contains("\(kind)/\(name)") { table[name] = record }
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

    /// A decoding problem of a document without a node tree (JSON): the document's line.
    static func decodingProblem(_ error: any Error, line: Int?, file: String, what: String, depth: Int = 0) -> RecordProblem {
        var (path, detail) = describe(error)
        // A coding path starts at the document (a List's item: `items`, `Index N`, then the
        // object's fields); a record's own field error names the field from the object already.
        if !(error is RecordFieldError) { path.removeFirst(min(depth, path.count)) }
        let field = path.isEmpty ? "" : " field \(path.joined(separator: "."))"
        return RecordProblem(file: file, line: line, message: "\(what):\(field) \(detail)")
    }

    /// Type errors name the field and its line; the offending value is never quoted.
    static func decodingProblem(_ error: any Error, node: Node, file: String, what: String) -> RecordProblem {
        let (path, detail) = describe(error)
        let field = path.isEmpty ? "" : " field \(path.joined(separator: "."))"
        let line = Self.node(at: path, in: node)?.mark?.line ?? node.mark?.line
        return RecordProblem(file: file, line: line, message: "\(what):\(field) \(detail)")
    }

    /// The field path of a decoding error and what is wrong with it (never the value).
    private static func describe(_ error: any Error) -> (path: [String], detail: String) {
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
        return (path, detail)
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Bool.Type: return "a boolean"
        case is String.Type: return "a string"
        case is [String].Type: return "a list of strings"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "a list" }
            return name.contains("Dictionary") ? "a mapping" : name
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

/// A record kind whose metadata a records directory stamps with a version (manifests have none).
protocol VersionedRecord {
    var metadata: ObjectMeta { get set }
}

extension ClusterAuthToken: VersionedRecord {}
extension ClusterUserAttribute: VersionedRecord {}
extension HashSecret: VersionedRecord {}

/// Each record of a file as "Kind/name" and its line, in the order read, for placing records that
/// two files define (``RecordsDirectory/FileRecords/keys``). Packed (the kind as a
/// number, the names in one byte array, 32-bit ends and lines) because a file of 100,000 tokens and
/// 100,000 Secrets held ~18 MB of these as an array of strings, more than its records' tables.
package struct RecordKeys: Sendable, Sequence {
    private var kinds: [String] = []
    private var kindOfKey: [UInt8] = []
    private var names: [UInt8] = []
    private var ends: [UInt32] = []
    private var lines: [UInt32] = []

    package init() {}

    package var count: Int { ends.count }

    package mutating func append(kind: String, name: String, line: Int) {
        let kindNumber: Int
        if let known = kinds.firstIndex(of: kind) {
            kindNumber = known
        } else {
            kindNumber = kinds.count
            kinds.append(kind)
        }
        // A file admits four kinds, so the number fits; lines and offsets past 4 G cannot come
        // from a file this service reads whole, and would only misplace a message's line.
        kindOfKey.append(UInt8(truncatingIfNeeded: kindNumber))
        names.append(contentsOf: name.utf8)
        ends.append(UInt32(clamping: names.count))
        lines.append(UInt32(clamping: line))
    }

    /// Gives back the room kept for growth (a parsed file's keys are kept, not added to).
    package mutating func shrinkToFit() {
        kindOfKey = kindOfKey.withoutSpareCapacity
        names = names.withoutSpareCapacity
        ends = ends.withoutSpareCapacity
        lines = lines.withoutSpareCapacity
    }

    /// Key `index` as "Kind/name".
    package func key(at index: Int) -> String {
        "\(kinds[Int(kindOfKey[index])])/\(String(decoding: nameBytes(at: index), as: UTF8.self))"
    }

    package func line(at index: Int) -> Int { Int(lines[index]) }

    private func nameBytes(at index: Int) -> ArraySlice<UInt8> {
        names[(index == 0 ? 0 : Int(ends[index - 1]))..<Int(ends[index])]
    }

    /// A hash of key `index` (its kind and name), equal for equal keys in any file's keys.
    package func hash(at index: Int) -> Int {
        var hasher = Hasher()
        hasher.combine(kinds[Int(kindOfKey[index])])
        nameBytes(at: index).withUnsafeBytes { hasher.combine(bytes: $0) }
        return hasher.finalize()
    }

    /// Whether key `index` is key `otherIndex` of `other`.
    package func sameKey(at index: Int, as other: RecordKeys, at otherIndex: Int) -> Bool {
        kinds[Int(kindOfKey[index])] == other.kinds[Int(other.kindOfKey[otherIndex])]
            && nameBytes(at: index).elementsEqual(other.nameBytes(at: otherIndex))
    }

    package func makeIterator() -> AnyIterator<(String, Int)> {
        var index = 0
        return AnyIterator {
            guard index < ends.count else { return nil }
            defer { index += 1 }
            let start = index == 0 ? 0 : Int(ends[index - 1])
            let name = String(decoding: names[start..<Int(ends[index])], as: UTF8.self)
            return ("\(kinds[Int(kindOfKey[index])])/\(name)", Int(lines[index]))
        }
    }
}
