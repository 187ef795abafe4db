@testable import RancherAuth
import Testing
import TestSupport

@Suite("RecordTable: tokens and hash Secrets by name, stored compactly")
struct RecordTableTests {
    private static func token(_ name: String, user: String, expiresAt: String = "", legacy: String = "") -> ClusterAuthToken {
        ClusterAuthToken(
            metadata: ObjectMeta(name: name, namespace: "cattle-system", resourceVersion: "17"), userName: user, enabled: true,
            expiresAt: expiresAt, lastUsedAt: Timestamp(seconds: 1_700_000_000, nanoseconds: 5), legacyHash: legacy)
    }

    /// Every field a decision, the census or the snapshot file reads.
    private static func same(_ lhs: ClusterAuthToken?, _ rhs: ClusterAuthToken?) -> Bool {
        guard let lhs, let rhs else { return lhs == nil && rhs == nil }
        return lhs.metadata == rhs.metadata && lhs.userName == rhs.userName && lhs.enabled == rhs.enabled
            && lhs.expiresAt == rhs.expiresAt && lhs.expiry == rhs.expiry && lhs.lastUsedAt == rhs.lastUsedAt
            && lhs.legacyHash == rhs.legacyHash && lhs.contentVersion == rhs.contentVersion
            && "\(String(describing: lhs.parsedLegacyHash))" == "\(String(describing: rhs.parsedLegacyHash))"
    }

    @Test(
        "A token comes back with every field, whatever its expiresAt and legacy hash",
        arguments: [
            ("", ""), ("2026-12-06T10:21:08Z", ""), ("2026-12-06T10:21:08.5Z", ""), ("2026-12-06T11:21:08+01:00", ""),
            ("tomorrow", ""), ("", "$3:1:AAECAwQFBgc:\(v1Digest)"), ("", "$9:nonsense"),
        ])
    func tokenRoundTrip(expiresAt: String, legacy: String) {
        let original = Self.token("kubeconfig-u-abc12wlwtf", user: "u-abc12", expiresAt: expiresAt, legacy: legacy)
        let table = RecordTable([original])
        #expect(Self.same(table["kubeconfig-u-abc12wlwtf"], original))
        let unversioned = ClusterAuthToken(metadata: ObjectMeta(name: "t"), userName: "a-user-id-longer-than-fifteen", enabled: false)
        #expect(Self.same(RecordTable([unversioned])["t"], unversioned))
    }

    @Test(
        "A hash Secret comes back with its hash, whichever algorithm or problem it has", arguments: positiveVectors + quirkVectors + negativeVectors)
    func secretRoundTrip(vector: HashVector) {
        let original = HashSecret(metadata: ObjectMeta(name: "token-abc12", namespace: "cattle-system", resourceVersion: "9"), hash: vector.hash)
        let stored = RecordTable([original])["token-abc12"]
        #expect(stored?.metadata == original.metadata)
        #expect(stored?.hash == original.hash)
        #expect(stored?.hashText == original.hashText)
        #expect(stored?.hasHashEntry == original.hasHashEntry)
    }

    @Test("A Secret without a hash entry stays one")
    func secretWithoutHash() {
        let table = RecordTable([HashSecret(metadata: ObjectMeta(name: "tls"), hash: "")])
        #expect(table["tls"]?.hasHashEntry == false)
        #expect(table.count == 1)
    }

    /// Seeded random inserts, replacements and removals, checked against a dictionary after each
    /// step: lookups (present and absent), the count, and iteration. Few names, so that the same
    /// names come and go and probe runs grow, shrink and wrap around the index.
    @Test("Behaves as a dictionary under random inserts, replacements and removals", arguments: [1 as UInt64, 2, 3, 4])
    func modelCheck(seed: UInt64) {
        var generator = SeededGenerator(state: seed)
        var table = RecordTable<ClusterAuthToken>()
        var model: [String: ClusterAuthToken] = [:]
        let names = (0..<300).map { index in index % 7 == 0 ? "t\(index)" : "kubeconfig-u-user\(index)-longer-name" } + [""]
        for step in 0..<20_000 {
            let name = names.randomElement(using: &generator)!
            if Int.random(in: 0..<3, using: &generator) == 0 {
                table[name] = nil
                model[name] = nil
            } else {
                let token = Self.token(name, user: "u-\(step % 97)", expiresAt: step % 5 == 0 ? "2030-01-01T00:00:00Z" : "")
                table[name] = token
                model[name] = token
            }
            #expect(table.count == model.count, "seed \(seed) step \(step)")
            if step % 997 == 0 {
                for name in names { #expect(Self.same(table[name], model[name]), "seed \(seed) step \(step) \(name)") }
                #expect(Set(table.keys) == Set(model.keys))
                #expect(Set(table.map(\.key)) == Set(model.keys))
                #expect(table.allSatisfy { Self.same($0.value, model[$0.key]) })
                // The name walk (finding records defined twice) sees the live records once each,
                // and a place it gives names the same record.
                var walked: [String] = []
                table.forEachName { place, bytes in
                    let name = String(decoding: bytes, as: UTF8.self)
                    walked.append(name)
                    #expect(table.name(at: place) == name)
                }
                #expect(walked.sorted() == model.keys.sorted(), "seed \(seed) step \(step)")
            }
        }
        for name in names { #expect(Self.same(table[name], model[name]), "seed \(seed) \(name)") }
    }

    @Test("Replaced and removed records' bytes are reclaimed, and the rest stays readable")
    func compaction() {
        var table = RecordTable<HashSecret>()
        let hash = "$3:1:AAECAwQFBgc:\(v1Digest)"
        for round in 0..<40 {
            for index in 0..<100 {
                table["secret-\(index)"] = HashSecret(metadata: ObjectMeta(name: "secret-\(index)", resourceVersion: "\(round)"), hash: hash)
            }
        }
        // 40 rounds of 100 records of ~80 bytes each were written; what is held stays near one round's.
        #expect(table.storageBytes < 64 * 1024 * 3)
        for index in stride(from: 0, to: 100, by: 2) { table["secret-\(index)"] = nil }
        #expect(table.count == 50)
        for index in 0..<100 {
            let secret = table["secret-\(index)"]
            #expect((secret == nil) == index.isMultiple(of: 2))
            if let secret {
                #expect(secret.metadata.resourceVersion == "39")
                #expect(secret.hashText == hash)
            }
        }
    }

    @Test("Built in bulk with room reserved ahead, then trimmed: every record is there and the room is given back")
    func bulkBuild() {
        var table = RecordTable<ClusterAuthToken>()
        for part in 0..<20 {
            table.reserveCapacity(forAdding: 500)
            for index in 0..<500 { table["token-\(part)-\(index)"] = Self.token("token-\(part)-\(index)", user: "u-\(index)") }
        }
        let reserved = table.storageBytes
        table.shrinkToFit()
        #expect(table.count == 10_000)
        #expect(table.storageBytes < reserved)
        for part in [0, 7, 19] { #expect(table["token-\(part)-499"]?.userName == "u-499") }
        #expect(table["token-20-0"] == nil)
    }

    @Test("A copy keeps its records when the original changes")
    func copyOnWrite() {
        var table = RecordTable([Self.token("a", user: "u-1"), Self.token("b", user: "u-2")])
        let copy = table
        table["a"] = nil
        table["b"] = Self.token("b", user: "u-3")
        table["c"] = Self.token("c", user: "u-4")
        #expect(copy.count == 2)
        #expect(copy["a"]?.userName == "u-1")
        #expect(copy["b"]?.userName == "u-2")
        #expect(copy["c"] == nil)
        #expect(table["b"]?.userName == "u-3")
    }

    @Test("Names are compared byte for byte: case, prefixes and non-ASCII names are distinct keys")
    func distinctNames() {
        let names = ["token", "Token", "token-", "tok", "tōken", "ext/token", ""]
        let table = RecordTable(names.map { Self.token($0, user: "u-\($0)") })
        #expect(table.count == names.count)
        for name in names { #expect(table[name]?.userName == "u-\(name)") }
        #expect(table["TOKEN"] == nil)
        #expect(!table.contains("toke"))
    }

    @Test("Each record keeps its own namespace and resourceVersion, the table holding each namespace once")
    func metadataKept() {
        let records = [
            ClusterAuthToken(metadata: ObjectMeta(name: "a", namespace: "cattle-system", resourceVersion: "1"), userName: "u", enabled: true),
            ClusterAuthToken(metadata: ObjectMeta(name: "b", namespace: "other", resourceVersion: nil), userName: "u", enabled: true),
            ClusterAuthToken(
                metadata: ObjectMeta(name: "c", namespace: nil, resourceVersion: "an-opaque-version-of-40-characters-long-x"), userName: "u",
                enabled: true),
            ClusterAuthToken(metadata: ObjectMeta(name: "d", namespace: "cattle-system", resourceVersion: ""), userName: "u", enabled: true),
        ]
        let table = RecordTable(records)
        for record in records { #expect(table[record.name]?.metadata == record.metadata) }
    }

    @Test(
        "A resourceVersion comes back as the same text, whether it is kept as a number or as bytes",
        arguments: [
            "0", "7", "210003", "9999999999999999999", "18446744073709551615", "18446744073709551616", "007", "+5", "-1", " 5", "5 ",
            "", "1e3", "١٢", "abc", String(repeating: "9", count: 300),
        ])
    func resourceVersionKept(version: String) {
        var table = RecordTable([HashSecret(metadata: ObjectMeta(name: "s", namespace: "cattle-system", resourceVersion: version), hash: "")])
        #expect(table["s"]?.metadata.resourceVersion == version)
        // Its bytes are the record's: replaced and compacted away with it.
        for round in 0..<2_000 { table["s"] = HashSecret(metadata: ObjectMeta(name: "s", resourceVersion: "\(version)\(round)"), hash: "") }
        #expect(table["s"]?.metadata.resourceVersion == "\(version)1999")
        #expect(table.storageBytes < 200 * 1024)
    }

    @Test("A record of one namespace too many is not stored, and takes an earlier record of its name with it (fail closed)")
    func tooManyNamespaces() {
        var table = RecordTable<ClusterAuthToken>()
        for index in 0..<RecordTable<ClusterAuthToken>.maximumNamespaces {
            table["t\(index)"] = ClusterAuthToken(metadata: ObjectMeta(name: "t\(index)", namespace: "ns-\(index)"), userName: "u", enabled: true)
        }
        table["t0"] = ClusterAuthToken(metadata: ObjectMeta(name: "t0", namespace: "one-more"), userName: "u", enabled: true)
        #expect(table["t0"] == nil)
        #expect(table.count == RecordTable<ClusterAuthToken>.maximumNamespaces - 1)
        #expect(table["t1"]?.metadata.namespace == "ns-1")
        // A namespace it already holds is still taken.
        table["t0"] = ClusterAuthToken(metadata: ObjectMeta(name: "t0", namespace: "ns-5"), userName: "u", enabled: true)
        #expect(table["t0"]?.metadata.namespace == "ns-5")
    }

    /// The rows are what 100,000 records cost (docs/benchmarks.md, "Compact records"): a field
    /// added to one shows here first.
    @Test("Rows stay at their measured sizes: 48 bytes for a token, 16 for a hash Secret")
    func rowSizes() {
        #expect(MemoryLayout<ClusterAuthToken.Row>.stride == 48)
        #expect(MemoryLayout<HashSecret.Row>.stride == 16)
        #expect(MemoryLayout<ClusterAuthToken.Row?>.stride == 48)
        #expect(MemoryLayout<HashSecret.Row?>.stride == 16)
    }

    @Test("A content digest kept as two integers writes back the same 15 characters", arguments: [1 as UInt64, 2, 3])
    func contentDigestText(seed: UInt64) {
        var generator = SeededGenerator(state: seed)
        for _ in 0..<1_000 {
            let bytes = (0..<11).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(ContentDigest(bytes).text == GoBase64.encode(bytes))
        }
        #expect(ContentDigest([UInt8](repeating: 0xFF, count: 11)).text == GoBase64.encode([UInt8](repeating: 0xFF, count: 11)))
        #expect(ContentVersion.digest(of: ["a", "b"]).text == ContentVersion.of(["a", "b"]))
    }
}
