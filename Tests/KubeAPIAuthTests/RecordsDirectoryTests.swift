import Foundation
import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import RancherAuth
import Testing
import TestSupport

@Suite("Records directory")
struct RecordsDirectoryTests {
    @Test("Loads the fixture: token, user, hash Secret; the token verifies")
    func loadsFixture() throws {
        let directory = try TemporaryDirectory()
        try directory.write("fixture.yaml", fixtureManifest)
        let load = try RecordsDirectory(path: directory.path, namespace: "cattle-system").load()
        #expect(load.problems.isEmpty)
        #expect(load.tokens.values.map(\.name) == ["kubeconfig-u-abc12x7k2q"])
        #expect(load.users.map(\.name) == ["u-abc12"])
        let decision = Authenticator().review(token: validToken, snapshot: load.snapshot(), now: Timestamp(seconds: 1_800_000_000))
        #expect(decision.isAuthenticated)
    }

    @Test("The example records in the repository load without problems")
    func exampleRecords() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../examples/records").path
        let load = try RecordsDirectory(path: examples, namespace: "cattle-system").load()
        #expect(load.problems.isEmpty)
        #expect(load.tokens.count >= 3)
    }

    @Test("A YAML syntax error drops the whole file, names file and line, and keeps other files")
    func syntaxErrorFailsClosed() throws {
        let directory = try TemporaryDirectory()
        try directory.write("a-good.yaml", fixtureManifest)
        try directory.write(
            "b-broken.yaml",
            // Documents are decoded as they are parsed: the valid one before the error must be
            // dropped with the rest of the file.
            """
            apiVersion: cluster.cattle.io/v3
            kind: ClusterAuthToken
            metadata: {name: decoded-before-the-error, namespace: cattle-system}
            userName: u-abc12
            enabled: true
            ---
            apiVersion: cluster.cattle.io/v3
            kind: ClusterAuthToken
            metadata: {name: other, namespace: cattle-system}
            userName: u-abc12
            enabled: [true
            """)
        let load = try RecordsDirectory(path: directory.path, namespace: "cattle-system").load()
        #expect(load.tokens.values.map(\.name) == ["kubeconfig-u-abc12x7k2q"])
        #expect(load.problems.count == 1)
        let problem = try #require(load.problems.first)
        #expect(problem.file == "b-broken.yaml")
        #expect(problem.line != nil)
        #expect(problem.description.hasPrefix("b-broken.yaml:"))
    }

    @Test("A botched edit meant to revoke a token drops the token instead of keeping it alive")
    func typeErrorFailsClosed() throws {
        let directory = try TemporaryDirectory()
        // `enabled: "false"` is a string, which the Go service cannot decode either.
        try directory.write("fixture.yaml", fixtureManifest.replacing("enabled: true\nexpiresAt", with: "enabled: \"false\"\nexpiresAt"))
        let load = try RecordsDirectory(path: directory.path, namespace: "cattle-system").load()
        #expect(load.tokens.isEmpty && load.users.isEmpty && load.hashSecrets.isEmpty)
        let problem = try #require(load.problems.first)
        #expect(problem.line == 5)
        #expect(problem.message.contains("field enabled"))
        #expect(problem.message.contains("ClusterAuthToken kubeconfig-u-abc12x7k2q"))
        let decision = Authenticator().review(token: validToken, snapshot: load.snapshot(), now: Timestamp(seconds: 1_800_000_000))
        #expect(decision.refusalReason == .tokenNotFound)
    }

    @Test("Problems never quote file content such as a hash")
    func problemsDoNotLeak() throws {
        let directory = try TemporaryDirectory()
        let broken = fixtureManifest.replacing("  hash: JDM6", with: "  hash: [JDM6") + "\n"
        try directory.write("secret.yaml", broken)
        try directory.write("bad-base64.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata:\n  hash: \"$3:1:AAECAwQFBgc:abc\"\n")
        let load = try RecordsDirectory(path: directory.path, namespace: "cattle-system").load()
        #expect(load.problems.count == 2)
        for problem in load.problems {
            #expect(!problem.description.contains("JDM6"))
            #expect(!problem.description.contains("AAECAwQFBgc"))
        }
    }

    @Test("Other namespaces and kinds are ignored; List, JSON and stringData are read")
    func shapes() throws {
        let directory = try TemporaryDirectory()
        try directory.write(
            "list.yaml",
            """
            apiVersion: v1
            kind: List
            items:
            - apiVersion: cluster.cattle.io/v3
              kind: ClusterUserAttribute
              metadata: {name: u-list}
              enabled: true
            - apiVersion: cluster.cattle.io/v3
              kind: ClusterUserAttribute
              metadata: {name: u-elsewhere, namespace: kube-system}
              enabled: true
            - apiVersion: apps/v1
              kind: Deployment
              metadata: {name: ignored}
            """)
        try directory.write(
            "token.json",
            #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"t-json"},"userName":"u-list","enabled":true}"#)
        try directory.write(
            "secret.yml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: t-json}\nstringData:\n  hash: \"\(v1Hash)\"\n")
        try directory.write("notes.txt", "not a manifest")
        try directory.write(".hidden.yaml", "garbage: [")
        let load = try RecordsDirectory(path: directory.path, namespace: "cattle-system").load()
        #expect(load.problems.isEmpty)
        #expect(load.users.map(\.name) == ["u-list"])
        #expect(load.files == ["list.yaml", "secret.yml", "token.json"])
        let decision = Authenticator().review(token: "t-json:test-secret-key", snapshot: load.snapshot(), now: Timestamp(seconds: 0))
        #expect(decision.isAuthenticated)
    }

    @Test("A record defined in two files is dropped from both")
    func duplicates() throws {
        let directory = try TemporaryDirectory()
        try directory.write("a.yaml", fixtureManifest)
        try directory.write(
            "b.yaml",
            "apiVersion: cluster.cattle.io/v3\nkind: ClusterAuthToken\nmetadata: {name: kubeconfig-u-abc12x7k2q}\nuserName: u-abc12\nenabled: true\n")
        let load = try RecordsDirectory(path: directory.path, namespace: "cattle-system").load()
        #expect(load.tokens.isEmpty)
        #expect(load.users.count == 1)
        #expect(load.problems.count == 1)
        #expect(load.problems[0].message.contains("also defined at a.yaml:1"))
    }

    @Test(
        "Records defined more than once, across files or within one, are found as the first-seen rule finds them (200 seeded directories, each loaded, partly rewritten and loaded again)"
    )
    func duplicatesAsFirstSeen() throws {
        var random = SeededGenerator(state: 0xD0_B1E5)
        let kinds = [
            ("ClusterAuthToken", "apiVersion: cluster.cattle.io/v3\nkind: ClusterAuthToken\nmetadata: {name: NAME}\nuserName: u-a\nenabled: true\n"),
            ("Secret", "apiVersion: v1\nkind: Secret\nmetadata: {name: NAME}\nstringData: {hash: plain}\n"),
            ("ClusterUserAttribute", "apiVersion: cluster.cattle.io/v3\nkind: ClusterUserAttribute\nmetadata: {name: NAME}\nenabled: true\n"),
        ]
        // One file's text, its keys and lines, and whether it is broken.
        func makeFile() -> (text: String, keys: [(String, Int)], broken: Bool) {
            var text = ""
            var keys: [(String, Int)] = []
            for _ in 0..<Int.random(in: 0...5, using: &random) {
                let (kind, template) = kinds.randomElement(using: &random)!
                let object = "n-\(Int.random(in: 0..<4, using: &random))"
                keys.append(("\(kind)/\(object)", text.split(separator: "\n", omittingEmptySubsequences: false).count + 1))
                text += "---\n" + template.replacing("NAME", with: object)
            }
            let broken = Int.random(in: 0..<6, using: &random) == 0
            if broken { text += "---\nkind: [unclosed\n" }
            return (text, keys, broken)
        }
        var compared = 0
        var reread = 0
        for round in 0..<200 {
            let temporary = try TemporaryDirectory()
            let directory = RecordsDirectory(path: temporary.path, namespace: "cattle-system")
            var contents: [(text: String, keys: [(String, Int)], broken: Bool)] = (0..<Int.random(in: 1...4, using: &random)).map { _ in makeFile() }
            for generation in 0..<2 {
                if generation == 1 {
                    // Some files rewritten (a file kept is taken from the last load, not parsed).
                    for index in contents.indices where Bool.random(using: &random) { contents[index] = makeFile() }
                }
                // The model: files in name order, a broken file contributing nothing, the first
                // place of each "Kind/name" remembered, each later one a problem naming it.
                var seen: [String: String] = [:]
                var expected: [String] = []
                var dropped: Set<String> = []
                var defined: [String] = []
                for (file, content) in contents.enumerated() {
                    let name = "f\(file).yaml"
                    if generation == 0 || (try? String(contentsOfFile: temporary.file(name), encoding: .utf8)) != content.text {
                        try temporary.write(name, content.text)
                    }
                    guard !content.broken else { continue }
                    for (key, line) in content.keys {
                        defined.append(key)
                        if let first = seen[key] {
                            dropped.insert(key)
                            expected.append("\(name):\(line): \(key) is also defined at \(first); both are ignored")
                        } else {
                            seen[key] = "\(name):\(line)"
                        }
                    }
                }
                let parsedBefore = directory.filesParsed
                let load = try directory.load()
                let context = "round \(round), generation \(generation)"
                #expect(load.problems.map(\.description).filter { $0.contains("defined") } == expected, "\(context)")
                let kept = Set(defined).subtracting(dropped)
                #expect(
                    Set(load.tokens.values.map { "ClusterAuthToken/\($0.name)" }) == kept.filter { $0.hasPrefix("ClusterAuthToken/") }, "\(context)")
                #expect(Set(load.hashSecrets.values.map { "Secret/\($0.name)" }) == kept.filter { $0.hasPrefix("Secret/") }, "\(context)")
                #expect(
                    Set(load.users.map { "ClusterUserAttribute/\($0.name)" }) == kept.filter { $0.hasPrefix("ClusterUserAttribute/") },
                    "\(context)")
                // Places are kept for the files that hold a record defined twice, and no others.
                let holding = contents.indices.filter { file in
                    !contents[file].broken && contents[file].keys.contains { dropped.contains($0.0) }
                }.map { "f\($0).yaml" }
                #expect(directory.filesKeepingPlaces == holding, "\(context)")
                if generation == 1, directory.filesParsed > parsedBefore + contents.count {
                    Issue.record("parsed more than every file once: \(context)")
                }
                if generation == 1, !expected.isEmpty { compared += 1 }
                reread += directory.filesParsed - parsedBefore
            }
        }
        #expect(compared > 50, "too few reloaded directories with records defined twice: \(compared)")
        #expect(reread > 0)
    }

    @Test("A file kept from the last load is read again only when a record of it is newly defined elsewhere, and keeps its places while it is")
    func placesReadAgainOnlyWhenNeeded() throws {
        let temporary = try TemporaryDirectory()
        try temporary.write("a.yaml", fixtureManifest)
        try temporary.write("b.yaml", "apiVersion: cluster.cattle.io/v3\nkind: ClusterUserAttribute\nmetadata: {name: u-b}\nenabled: true\n")
        let directory = RecordsDirectory(path: temporary.path, namespace: "cattle-system")
        #expect(try directory.load().problems.isEmpty)
        #expect(directory.filesParsed == 2)
        #expect(directory.filesKeepingPlaces.isEmpty)
        // c.yaml defines a.yaml's token again: a.yaml is read again for the place of its token.
        try temporary.write(
            "c.yaml",
            "# a comment line\napiVersion: cluster.cattle.io/v3\nkind: ClusterAuthToken\nmetadata: {name: kubeconfig-u-abc12x7k2q}\nuserName: u-b\nenabled: true\n"
        )
        let twice = try directory.load()
        #expect(
            twice.problems.map(\.description) == ["c.yaml:2: ClusterAuthToken/kubeconfig-u-abc12x7k2q is also defined at a.yaml:1; both are ignored"])
        #expect(twice.tokens.isEmpty)
        #expect(directory.filesParsed == 4)
        #expect(directory.filesKeepingPlaces == ["a.yaml", "c.yaml"])
        // Unchanged, nothing is read again; the problem stays as it was.
        #expect(try directory.load().problems == twice.problems)
        #expect(directory.filesParsed == 4)
        try FileManager.default.removeItem(atPath: temporary.file("c.yaml"))
        let fixed = try directory.load()
        #expect(fixed.problems.isEmpty)
        #expect(fixed.tokens.count == 1)
        #expect(directory.filesParsed == 4)
        #expect(directory.filesKeepingPlaces.isEmpty)
    }

    @Test("A record defined twice whose places cannot be read again (the file changed) is still dropped, with a problem")
    func duplicatesWithoutPlacesStillDropped() throws {
        let temporary = try TemporaryDirectory()
        try temporary.write("a.yaml", fixtureManifest)
        try temporary.write(
            "b.yaml", "apiVersion: cluster.cattle.io/v3\nkind: ClusterAuthToken\nmetadata: {name: kubeconfig-u-abc12x7k2q}\nuserName: u-b\n")
        let directory = RecordsDirectory(path: temporary.path, namespace: "cattle-system")
        var files = ["a.yaml", "b.yaml"].map { (file: $0, records: directory.parseFile(named: $0)) }
        files[0].records.keys = nil
        var asked: [Int] = []
        let found = RecordsDirectory.duplicates(among: files, emergencySecretName: "unused") { index in
            asked.append(index)
            return RecordKeys()  // read again, the file no longer has the token
        }
        #expect(asked == [0])
        #expect(found.dropped == ["ClusterAuthToken/kubeconfig-u-abc12x7k2q"])
        #expect(found.involved == [0, 1])
        #expect(
            found.problems[1]?.map(\.description) == [
                "b.yaml: ClusterAuthToken/kubeconfig-u-abc12x7k2q is defined more than once; every definition is ignored"
            ])
        // A record given twice in one file, where the later replaced the earlier in its table.
        try temporary.write(
            "c.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {hash: x}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {hash: y}\n"
        )
        var single = directory.parseFile(named: "c.yaml")
        single.keys = nil
        let repeated = RecordsDirectory.duplicates(among: [("c.yaml", single)], emergencySecretName: "unused") { _ in nil }
        #expect(repeated.dropped == ["Secret/s"])
        #expect(repeated.problems[0]?.map(\.description) == ["c.yaml: Secret/s is defined more than once; every definition is ignored"])
    }

    @Test("A file's record keys come back in order, with their kinds, names and lines")
    func recordKeys() {
        var keys = RecordKeys()
        let written = [
            ("ClusterAuthToken", "kubeconfig-u-abc12x7k2q", 1), ("Secret", "kubeconfig-u-abc12x7k2q", 9),
            ("ClusterUserAttribute", "u-abc12", 17), ("ClusterAuthToken", "", 20), ("Secret", "tōken-ü", 1_000_000),
        ]
        for (kind, name, line) in written { keys.append(kind: kind, name: name, line: line) }
        keys.shrinkToFit()
        #expect(keys.count == written.count)
        let read = Array(keys)
        #expect(read.map(\.0) == written.map { "\($0.0)/\($0.1)" })
        #expect(read.map(\.1) == written.map(\.2))
    }

    @Test("The refresh ConfigMap sets the refresh period")
    func refreshConfigMap() throws {
        let directory = try TemporaryDirectory()
        try directory.write("fixture.yaml", fixtureManifest)
        try directory.write(
            "refresh.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: auth-provider-refresh-debounce-seconds}\ndata: {value: \"0\"}\n")
        let snapshot = try RecordsDirectory(path: directory.path, namespace: "cattle-system").load().snapshot()
        #expect(snapshot.refreshPeriod == .enabled(nanoseconds: 0))
        let decision = Authenticator().review(token: validToken, snapshot: snapshot, now: Timestamp(seconds: 1_800_000_000))
        #expect(decision.effects.requestUserRefresh)
    }

    @Test("A missing directory is a clear error")
    func missingDirectory() {
        #expect(throws: RecordsDirectory.DirectoryError.self) {
            try RecordsDirectory(path: "/nonexistent/records", namespace: "cattle-system").load()
        }
    }

    @Test("A file that cannot be read is read again at the next poll: a link whose target appears later")
    func unreadableFileIsRetried() throws {
        let directory = try TemporaryDirectory()
        let elsewhere = try TemporaryDirectory()
        try directory.write("fixture.yaml", fixtureManifest)
        // The link's own attributes (the fingerprint) do not change when its target appears.
        try FileManager.default.createSymbolicLink(atPath: directory.file("late.yaml"), withDestinationPath: elsewhere.file("late.yaml"))
        let store = RecordStore(source: "test")
        let log = LogCapture()
        let source = RecordsDirectorySource(
            directory: RecordsDirectory(path: directory.path, namespace: "cattle-system"), store: store,
            clock: FixedClock(instant: Timestamp(seconds: 5)), pollInterval: .seconds(1), logger: log.logger())
        let first = try source.reload()
        #expect(first.unreadableFiles == ["late.yaml"])
        #expect(store.snapshot?.tokens.count == 1)
        source.reloadIfChanged()
        #expect(store.status.generation == 2, "read again")
        #expect(log.text.components(separatedBy: "late.yaml: cannot be read").count == 2, "logged once: \(log.text)")
        let token = try TokenMinting.mint(user: "u-abc12", groups: [], lifetime: .unlimited, algorithm: .sha3, now: Timestamp(seconds: 0))
        try RecordManifests.token(token, namespace: "cattle-system").write(toFile: elsewhere.file("late.yaml"), atomically: true, encoding: .utf8)
        source.reloadIfChanged()
        #expect(store.snapshot?.tokens.count == 2)
        // Readable now: polls stop reloading until something changes.
        let generation = store.status.generation
        source.reloadIfChanged()
        #expect(store.status.generation == generation)
    }

    @Test("The source publishes reloads and keeps the last load when the directory disappears")
    func sourceReloads() throws {
        let directory = try TemporaryDirectory()
        try directory.write("fixture.yaml", fixtureManifest)
        let store = RecordStore(source: "test")
        #expect(store.snapshot == nil)
        let metrics = ServiceMetrics()
        let source = RecordsDirectorySource(
            directory: RecordsDirectory(path: directory.path, namespace: "cattle-system"), store: store,
            clock: FixedClock(instant: Timestamp(seconds: 5)), pollInterval: .seconds(1), metrics: metrics, logger: LogCapture().logger())
        try source.reload()
        #expect(store.status.generation == 1)
        #expect(store.snapshot?.tokens.count == 1)
        // The records gauge, as the API source sets it.
        let exposition = String(decoding: metrics.render(), as: UTF8.self)
        for sample in [#"kind="clusterauthtokens"} 1"#, #"kind="clusteruserattributes"} 1"#, #"kind="secrets"} 1"#, #"kind="configmaps"} 0"#] {
            #expect(exposition.contains("kube_api_auth_records{" + sample), "\(sample) in \(exposition)")
        }
        try FileManager.default.removeItem(atPath: directory.path)
        #expect(throws: RecordsDirectory.DirectoryError.self) { try source.reload() }
        #expect(store.snapshot?.tokens.count == 1)
    }
}

@Suite("Token minting")
struct TokenMintingTests {
    @Test("Minted tokens have Rancher's shape and their manifests verify")
    func mintedTokensVerify() throws {
        let token = try TokenMinting.mint(
            user: "u-abc12", groups: ["g://1"], lifetime: .seconds(3600), algorithm: .sha3, now: Timestamp(seconds: 1_000))
        #expect(token.name.hasPrefix("kubeconfig-u-abc12"))
        #expect(token.name.count == "kubeconfig-u-abc12".count + 5)
        #expect(token.secret.count == 54)
        #expect(token.secret.allSatisfy { TokenMinting.alphabet.contains($0) })
        #expect(token.expiresAt == "1970-01-01T01:16:40Z")
        let directory = try TemporaryDirectory()
        try directory.write("t.yaml", RecordManifests.token(token, namespace: "cattle-system"))
        try directory.write("u.yaml", RecordManifests.user(id: "u-abc12", groups: ["g://1", "a&b"], namespace: "cattle-system"))
        let load = try RecordsDirectory(path: directory.path, namespace: "cattle-system").load()
        #expect(load.problems.isEmpty)
        let decision = Authenticator().review(token: token.bearerToken, snapshot: load.snapshot(), now: Timestamp(seconds: 2_000))
        #expect(decision.isAuthenticated)
        #expect(
            Authenticator().review(token: token.bearerToken, snapshot: load.snapshot(), now: Timestamp(seconds: 5_000)).refusalReason == .tokenExpired
        )
    }

    @Test("Invalid user IDs are refused", arguments: ["", "U-ABC", "u_abc", "-u", "u-", "u abc", String(repeating: "a", count: 250)])
    func invalidUsers(user: String) {
        #expect(throws: TokenMinting.MintError.self) {
            try TokenMinting.mint(user: user, groups: [], lifetime: .unlimited, algorithm: .sha3, now: Timestamp(seconds: 0))
        }
    }

    @Test(
        "TTL parsing",
        arguments: [
            ("720h", TokenLifetime.seconds(2_592_000)), ("90m", .seconds(5400)), ("1h30m", .seconds(5400)), ("30d", .seconds(2_592_000)),
            ("45s", .seconds(45)), ("0", .unlimited),
        ])
    func ttl(text: String, expected: TokenLifetime) {
        #expect(TokenLifetime(parsing: text) == expected)
    }

    @Test("TTL parsing rejects", arguments: ["", "h", "10", "10x", "-1h", "1.5h", "99999999999999999999h"])
    func ttlRejects(text: String) {
        #expect(TokenLifetime(parsing: text) == nil)
    }
}

/// The JSON fast path: the same records as the YAML path, the same failures, and reloads that read
/// only what changed.
@Suite("Records directory: JSON documents")
struct RecordsDirectoryJSONTests {
    static let jsonFixture = """
        {"apiVersion": "cluster.cattle.io/v3", "kind": "ClusterAuthToken", "metadata": {"name": "kubeconfig-u-abc12x7k2q", "namespace": "cattle-system"}, "userName": "u-abc12", "enabled": true, "expiresAt": "2099-01-01T00:00:00Z", "hash": ""}
        ---
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kubeconfig-u-abc12x7k2q", "namespace": "cattle-system"}, "type": "Opaque", "data": {"hash": "JDM6MTpBQUVDQXdRRkJnYzpKUXpodmpGVXF3N3NMdEVSY0tjeHlMYlFLeWIyYzRUYjJZY2hDUkFvZ0F2RitjSnFSOEZKRWlrZG1UMXlNVVRrbzlCeSsyVmxvM3BNSkNGTkdSaVYxdw=="}}
        ---
        {"apiVersion": "cluster.cattle.io/v3", "kind": "ClusterUserAttribute", "metadata": {"name": "u-abc12", "namespace": "cattle-system"}, "groups": ["github_org://456", "github_team://123"], "lastRefresh": "2026-01-01T00:00:00Z", "needsRefresh": false, "enabled": true}
        ---
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "cattle-system"}, "data": {}}

        """

    static func load(_ files: [String: String]) throws -> RecordsDirectory.Load {
        let directory = try TemporaryDirectory()
        for (name, text) in files { try directory.write(name, text) }
        return try RecordsDirectory(path: directory.path, namespace: "cattle-system").load()
    }

    @Test("JSON documents give the records the YAML manifests give")
    func sameRecords() throws {
        let json = try Self.load(["fixture.yaml": Self.jsonFixture])
        let yaml = try Self.load(["fixture.yaml": fixtureManifest])
        #expect(json.problems.isEmpty)
        #expect(json.tokens.values.map(\.name) == yaml.tokens.values.map(\.name))
        #expect(json.tokens.values.map(\.expiresAt) == yaml.tokens.values.map(\.expiresAt))
        #expect(json.users.map(\.groups) == yaml.users.map(\.groups))
        #expect(json.users.map(\.lastRefresh) == yaml.users.map(\.lastRefresh))
        #expect(json.hashSecrets.values.map(\.name) == yaml.hashSecrets.values.map(\.name))
        let decision = Authenticator().review(token: validToken, snapshot: json.snapshot(), now: Timestamp(seconds: 1_800_000_000))
        #expect(decision.isAuthenticated)
    }

    @Test("kubectl get -o json: a List's items, each failing on its own, and the file failing closed")
    func listOfItems() throws {
        let list = """
            {"apiVersion": "v1", "kind": "List", "items": [
              {"apiVersion": "cluster.cattle.io/v3", "kind": "ClusterUserAttribute", "metadata": {"name": "u-a"}, "groups": [], "enabled": true},
              {"apiVersion": "cluster.cattle.io/v3", "kind": "ClusterUserAttribute", "metadata": {"name": "u-b"}, "groups": "nope", "enabled": true}
            ]}
            """
        let load = try Self.load(["list.json": list])
        #expect(load.users.isEmpty, "a file with a problem contributes nothing")
        #expect(load.problems.count == 1)
        #expect(load.problems.first?.description == "list.json:1: ClusterUserAttribute u-b: field groups expected a list")
        let good = try Self.load(["list.json": list.replacingOccurrences(of: #""groups": "nope""#, with: #""groups": ["g"]"#)])
        #expect(good.users.map(\.name).sorted() == ["u-a", "u-b"])
    }

    /// Everything a load says, comparably: each record's fields (its `Encodable` form, keys sorted)
    /// and every problem's words.
    static func summary(_ load: RecordsDirectory.Load) -> [String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // The version a file gives its records comes from the file's fingerprint: left out.
        func text(_ value: some Encodable) -> String {
            String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
                .replacing(#/"resourceVersion":"[^"]*"/#, with: #""resourceVersion":"(the file's)""#)
        }
        return load.tokens.values.map(text).sorted() + load.users.map(text) + load.hashSecrets.values.map(text).sorted()
            + load.problems.map(\.description) + [load.refreshConfigMap.map { "refresh \($0.metadata.name)" } ?? "no refresh"]
    }

    @Test(
        "JSON read straight from the bytes (a List item by item, objects as documents) loads exactly what JSONDecoder's reading loaded: records, problems, words (300 seeded files of each)"
    )
    func listWalkedAsDecodedWhole() throws {
        var random = SeededGenerator(state: 0xD1_5EC7)
        let items = [
            #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"t-NAME","namespace":"cattle-system"},"userName":"u-a","enabled":true,"expiresAt":"2099-01-01T00:00:00Z"}"#,
            #"{"kind":"ClusterAuthToken","apiVersion":"cluster.cattle.io/v3","metadata":{"name":"t-NAME"},"userName":"u-a","enabled":"yes"}"#,
            #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"t-NAME"},"lastUsedAt":"not a time"}"#,
            #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"t-NAME","namespace":"elsewhere"}}"#,
            #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":""}}"#,
            #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"t-\u004eAME"},"userName":"u-a","enabled":true}"#,
            #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"t-NAME"},"enabled":true,"enabled":false}"#,
            #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterUserAttribute","metadata":{"name":"u-NAME"},"groups":["g1","g2"],"enabled":true}"#,
            #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterUserAttribute","metadata":{"name":"u-NAME"},"groups":"nope"}"#,
            #"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"t-NAME"},"data":{"hash":"JDM6MTpjMkZzZEE6WkdsblpYTjA="}}"#,
            #"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"t-NAME"},"data":{"hash":"not base64!"}}"#,
            #"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"t-NAME"},"stringData":{"hash":"plain"}}"#,
            #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cattle-cluster-agent-refresh"},"data":{"refresh":"1h"}}"#,
            #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"other"}}"#,
            #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}"#,
            #"{"apiVersion":"v1","kind":5,"metadata":{"name":"p"}}"#,
            #"{"apiVersion":"v1","kind":"Secret","metadata":"nope"}"#,
            #"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterUserAttribute","metadata":{"name":"u-NAME"},"enabled":true}]}"#,
            "null", "7", "[]",
        ]
        // Good items three times as often as the rest: a file with any problem contributes nothing.
        let good = [0, 7, 9, 11, 12].map { items[$0] }
        let choices = items + good + good
        var walkedLists = 0
        for round in 0..<300 {
            let count = Int.random(in: 0...6, using: &random)
            let chosen = (0..<count).map { _ in
                choices.randomElement(using: &random)!.replacingOccurrences(of: "NAME", with: "\(Int.random(in: 0..<4, using: &random))")
            }
            let body = "\"items\":[" + chosen.joined(separator: ",") + "]"
            let walked = #"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"# + body + "}"
            // The same list with a number JSONDecoder reads and the strict walker does not: decoded whole.
            let whole = #"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"x":01,"# + body + "}"
            let fast = try Self.load(["list.json": walked])
            let slow = try Self.load(["list.json": whole])
            #expect(Self.summary(fast) == Self.summary(slow), "round \(round): \(walked)")
            if !slow.tokens.isEmpty || !slow.users.isEmpty { walkedLists += 1 }
            // The same objects as documents of one file (what bench/generate-records.py writes);
            // each given a number the strict reader refuses, for JSONDecoder's reading of them.
            let documents = chosen.map { "---\n" + $0 }.joined(separator: "\n")
            let decodedDocuments = chosen.map { "---\n" + ($0.hasPrefix("{") ? #"{"x":01,"# + $0.dropFirst() : $0) }.joined(separator: "\n")
            let fastDocuments = try Self.load(["objects.yaml": documents])
            let slowDocuments = try Self.load(["objects.yaml": decodedDocuments])
            #expect(Self.summary(fastDocuments) == Self.summary(slowDocuments), "round \(round): \(documents)")
        }
        #expect(walkedLists > 30, "too few lists with records to compare: \(walkedLists)")
    }

    @Test("A JSON file read a few bytes at a time loads what reading it at once loads: documents cut anywhere, CRLF, separators with spaces, YAML")
    func readInChunks() throws {
        let token = #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"t-N"},"userName":"u-a","enabled":true}"#
        let user = #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterUserAttribute","metadata":{"name":"u-a"},"groups":["g"],"enabled":true}"#
        let bad = #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"t-bad"},"enabled":"yes"}"#
        let files = [
            "---\n" + token.replacing("t-N", with: "t-1") + "\n---\n" + user + "\n",
            token + "\r\n---  \r\n\r\n" + user + "\r\n--- \t\n",
            "\n\n---\n---\n" + token + "\n---\n" + bad + "\n---\n" + user,
            #"{"apiVersion":"v1","kind":"List","items":["# + token + ",\n" + user + "]}",
            "---\n" + token + "\n---\nkind: ClusterUserAttribute\napiVersion: cluster.cattle.io/v3\nmetadata: {name: u-a}\nenabled: true\n",
            "# a comment\n" + token,
            token + "\n---\n" + #"{"apiVersion":"v1","kind":"#,
            token + "\n---",
        ]
        for (index, text) in files.enumerated() {
            let directory = try TemporaryDirectory()
            try directory.write("records.yaml", text)
            let whole = try RecordsDirectory(path: directory.path, namespace: "cattle-system").load()
            for size in [1, 2, 7, 64] {
                let chunked = try RecordsDirectory(path: directory.path, namespace: "cattle-system", readChunkSize: size).load()
                #expect(Self.summary(chunked) == Self.summary(whole), "file \(index), \(size) bytes at a time")
            }
            // Lines are counted across chunks: the bad token's document starts on line 7.
            if index == 2 {
                #expect(whole.problems.map(\.description) == ["records.yaml:7: ClusterAuthToken t-bad: field enabled expected a boolean"])
            }
        }
    }

    @Test("A record's own field error in a List's item names the field, as it does in a document of its own (YAML or JSON)")
    func fieldErrorInListItem() throws {
        let token = #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"t-1"},"lastUsedAt":"yesterday"}"#
        let secret = #"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"t-1"},"data":{"hash":"not base64!"}}"#
        let expected = [
            "list.json:1: ClusterAuthToken t-1: field lastUsedAt not an RFC 3339 time",
            "list.json:1: Secret t-1: field data.hash not valid base64",
        ]
        let list = try Self.load(["list.json": #"{"apiVersion":"v1","kind":"List","items":["# + token + "," + secret + "]}"])
        #expect(list.problems.map(\.description) == expected)
        let documents = try Self.load(["list.json": token + "\n---\n" + secret])
        #expect(
            documents.problems.map(\.description) == [
                "list.json:1: ClusterAuthToken t-1: field lastUsedAt not an RFC 3339 time",
                "list.json:3: Secret t-1: field data.hash not valid base64",
            ])
        let yaml = try Self.load([
            "list.yaml":
                "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: cluster.cattle.io/v3, kind: ClusterAuthToken, metadata: {name: t-1}, lastUsedAt: yesterday}\n"
        ])
        #expect(yaml.problems.map(\.message) == ["ClusterAuthToken t-1: field lastUsedAt not an RFC 3339 time"])
    }

    @Test("A wrong type in a JSON document names the file, the document's line and the field, never the value")
    func typeError() throws {
        let text = Self.jsonFixture.replacingOccurrences(of: #""enabled": true, "expiresAt""#, with: #""enabled": "very-secret-value", "expiresAt""#)
        let load = try Self.load(["fixture.yaml": text])
        #expect(load.tokens.isEmpty && load.users.isEmpty)
        #expect(load.problems.map(\.description) == ["fixture.yaml:1: ClusterAuthToken kubeconfig-u-abc12x7k2q: field enabled expected a boolean"])
        #expect(!load.problems.description.contains("very-secret-value"))
    }

    @Test("What is not one JSON object per document takes the YAML path: comments, block YAML, JSON that does not parse")
    func fallsBackToYAML() throws {
        let commented = "# a comment\n" + Self.jsonFixture
        #expect(try Self.load(["a.yaml": commented]).tokens.count == 1)
        let broken = Self.jsonFixture.replacingOccurrences(of: #""userName": "u-abc12","#, with: #""userName": "u-abc12""#)
        let load = try Self.load(["a.yaml": broken])
        #expect(load.tokens.isEmpty)
        #expect(load.problems.first?.message.hasPrefix("invalid YAML") == true, "\(load.problems)")
    }

    @Test("A JSON document that is not UTF-8 is refused as such, not decoded")
    func notUTF8() throws {
        let temporary = try TemporaryDirectory()
        var bytes = Array(#"{"apiVersion": "cluster.cattle.io/v3", "kind": "ClusterUserAttribute", "metadata": {"name": "u-"#.utf8)
        bytes += [0xFF, 0xFE]
        bytes += Array(#""}, "groups": [], "enabled": true}"#.utf8)
        #expect(FileManager.default.createFile(atPath: temporary.file("bad.json"), contents: Data(bytes)))
        let load = try RecordsDirectory(path: temporary.path, namespace: "cattle-system").load()
        #expect(load.users.isEmpty)
        #expect(load.problems.map(\.description) == ["bad.json: is not UTF-8 text"])
    }

    @Test("A reload parses only the files that changed")
    func unchangedFilesNotParsedAgain() throws {
        let temporary = try TemporaryDirectory()
        try temporary.write("a.yaml", Self.jsonFixture)
        try temporary.write(
            "b.yaml",
            "{\"apiVersion\": \"cluster.cattle.io/v3\", \"kind\": \"ClusterUserAttribute\", \"metadata\": {\"name\": \"u-b\"}, \"groups\": [], \"enabled\": true}\n"
        )
        let directory = RecordsDirectory(path: temporary.path, namespace: "cattle-system")
        let first = try directory.load()
        #expect(first.users.count == 2)
        #expect(directory.filesParsed == 2)
        #expect(try directory.load().users.count == 2)
        #expect(directory.filesParsed == 2)
        func version(_ load: RecordsDirectory.Load, _ user: String) -> String? {
            load.users.first { $0.name == user }?.metadata.resourceVersion
        }
        try temporary.write(
            "b.yaml",
            "{\"apiVersion\": \"cluster.cattle.io/v3\", \"kind\": \"ClusterUserAttribute\", \"metadata\": {\"name\": \"u-c\"}, \"groups\": [\"g\"], \"enabled\": true}\n"
        )
        let reloaded = try directory.load()
        #expect(directory.filesParsed == 3)
        #expect(reloaded.users.map(\.name).sorted() == ["u-abc12", "u-c"])
        // Each file's records carry the file's version: the unchanged file's stay (its remembered
        // verifications stay valid), the changed file's are new; the snapshot keeps them as they are.
        #expect(version(first, "u-abc12") != nil && version(reloaded, "u-abc12") == version(first, "u-abc12"))
        #expect(version(reloaded, "u-c") != nil && version(reloaded, "u-c") != version(first, "u-b"))
        #expect(reloaded.snapshot(revision: "ignored").users["u-c"]?.attribute.metadata.resourceVersion == version(reloaded, "u-c"))
    }
}
