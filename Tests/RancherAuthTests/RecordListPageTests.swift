import Foundation
import RancherAuth
import TestSupport
import Testing

/// `RecordListPage` must give exactly what `JSONDecoder` gives through the records' `Decodable`
/// inits, or nothing. The model here is that decoding, as `KubeClient` did it for every page; pages
/// are made the way kube-apiserver writes them, then bent every way that matters (nulls, absent
/// fields, wrong types, escapes, duplicates, non-ASCII, bad times and base64) and mutated bytewise.
@Suite("A list page read without JSONDecoder: exactly JSONDecoder's records, or nothing")
struct RecordListPageTests {
    // MARK: The model

    /// One item as `LenientObject` took it: the record, or the failure it was.
    enum Item<Record: Decodable>: Decodable {
        case record(Record)
        case failed

        init(from decoder: any Decoder) throws {
            do { self = .record(try Record(from: decoder)) } catch { self = .failed }
        }
    }

    struct ModelPage<Record: Decodable>: Decodable {
        struct Metadata: Decodable {
            var resourceVersion: String?
            var `continue`: String?
        }
        var metadata: Metadata?
        var items: [Item<Record>]?
    }

    /// A record as comparable bytes: every field its `Encodable` writes, keys sorted.
    static func canonical(_ record: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(record)) ?? Data("unencodable".utf8), as: UTF8.self)
    }

    /// The fast reading agrees with the model: if it reads the page, the model reads it too, with
    /// every item a record, each the same, and the same list metadata. Returns whether it read it.
    @discardableResult
    static func agrees<Record: Codable & Sendable>(
        _ bytes: [UInt8], _ read: (UnsafeRawBufferPointer) -> RecordListPage.Page<Record>?, sourceLocation: SourceLocation = #_sourceLocation
    ) -> Bool {
        guard let page = bytes.withUnsafeBytes(read) else { return false }
        let model = try? JSONDecoder().decode(ModelPage<Record>.self, from: Data(bytes))
        let text = String(decoding: bytes.prefix(600), as: UTF8.self)
        guard let model else {
            Issue.record("read a page JSONDecoder refuses: \(text)", sourceLocation: sourceLocation)
            return true
        }
        #expect(page.resourceVersion == model.metadata?.resourceVersion, "\(text)", sourceLocation: sourceLocation)
        #expect(page.continueToken == model.metadata?.continue, "\(text)", sourceLocation: sourceLocation)
        let modelItems = model.items ?? []
        #expect(page.items.count == modelItems.count, "\(text)", sourceLocation: sourceLocation)
        for (fast, slow) in zip(page.items, modelItems) {
            guard case .record(let expected) = slow else {
                Issue.record("read an item JSONDecoder refuses: \(text)", sourceLocation: sourceLocation)
                continue
            }
            #expect(canonical(fast) == canonical(expected), "\(text)", sourceLocation: sourceLocation)
        }
        return true
    }

    // MARK: Pages as kube-apiserver writes them, and bent

    /// Values for a string field: ordinary, empty, null, absent, wrong types, escapes, non-ASCII.
    static func stringValue(_ random: inout SeededGenerator, ordinary: [String]) -> String? {
        switch Int.random(in: 0..<20, using: &random) {
        case 0: return nil  // absent
        case 1: return "null"
        case 2: return "\"\""
        case 3: return "12"
        case 4: return "true"
        case 5: return #""caf\u00e9""#
        case 6: return "\"ümlaut-ü\""
        case 7: return #""a\"b""#
        default: return "\"\(ordinary.randomElement(using: &random)!)\""
        }
    }

    static func boolValue(_ random: inout SeededGenerator) -> String? {
        ["true", "false", "true", "false", "null", nil, "\"true\"", "1"].randomElement(using: &random)!
    }

    static func object(_ members: [(String, String?)], _ random: inout SeededGenerator) -> String {
        var present = members.compactMap { name, value in value.map { "\"\(name)\":\($0)" } }
        // Fields nobody reads, as the API adds them (escaped JSON in an annotation included).
        present.append(#""kind":"X""#)
        if Bool.random(using: &random) {
            present.append(#""annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"a\":[1,2.5e3,null]}\n"}"#)
        }
        if Int.random(in: 0..<8, using: &random) == 0, let duplicate = members.randomElement(using: &random), let value = duplicate.1 {
            present.append("\"\(duplicate.0)\":\(value)")
        }
        present.shuffle(using: &random)
        return "{" + present.joined(separator: Bool.random(using: &random) ? "," : ", ") + "}"
    }

    static func metadata(_ random: inout SeededGenerator, index: Int) -> String? {
        switch Int.random(in: 0..<12, using: &random) {
        case 0: return nil
        case 1: return "null"
        case 2: return "\"metadata\""
        default:
            let members: [(String, String?)] = [
                ("name", Int.random(in: 0..<6, using: &random) == 0 ? stringValue(&random, ordinary: ["x"]) : "\"token-\(index)\""),
                ("namespace", stringValue(&random, ordinary: ["cattle-system"])),
                ("resourceVersion", Int.random(in: 0..<6, using: &random) == 0 ? stringValue(&random, ordinary: ["7"]) : "\"\(1000 + index)\""),
                ("uid", "\"6f1c2a9e-\(index)\""), ("creationTimestamp", "\"2026-01-02T03:04:05Z\""),
            ]
            return object(members, &random)
        }
    }

    static func tokenItem(_ random: inout SeededGenerator, index: Int) -> String {
        let times = ["2099-01-01T00:00:00Z", "2020-01-01T00:00:00Z", "2099-01-01T00:00:00.5+02:00", "soon", ""]
        return object(
            [
                ("metadata", metadata(&random, index: index)), ("userName", stringValue(&random, ordinary: ["u-abc", "u-\(index % 7)"])),
                ("enabled", boolValue(&random)), ("expiresAt", stringValue(&random, ordinary: times)),
                ("lastUsedAt", stringValue(&random, ordinary: times)),
                ("hash", Int.random(in: 0..<4, using: &random) == 0 ? stringValue(&random, ordinary: ["$3:1:c2FsdA:ZGlnZXN0", "plain"]) : nil),
            ], &random)
    }

    static func secretItem(_ random: inout SeededGenerator, index: Int) -> String {
        func entries() -> String? {
            switch Int.random(in: 0..<8, using: &random) {
            case 0: return nil
            case 1: return "null"
            case 2: return "\"data\""
            default:
                return object(
                    [
                        (
                            "hash",
                            stringValue(
                                &random, ordinary: ["JDM6MTpjMkZzZEE6WkdsblpYTjA=", "JDM6MTpj", "not base64!", "JDM6MTpjMkZzZEE6WkdsblpYTjA"])
                        ),
                        ("other", "\"eA==\""),
                    ], &random)
            }
        }
        return object(
            [("metadata", metadata(&random, index: index)), ("data", entries()), ("stringData", Bool.random(using: &random) ? nil : entries())],
            &random)
    }

    static func userItem(_ random: inout SeededGenerator, index: Int) -> String {
        let groups: String? =
            switch Int.random(in: 0..<8, using: &random) {
            case 0: nil
            case 1: "null"
            case 2: "[]"
            case 3: #"["a",null]"#
            case 4: #"["a",7]"#
            case 5: #"["caf\u00e9"]"#
            default: #"["system:authenticated", "github_team://12", "ü"]"#
            }
        return object(
            [
                ("metadata", metadata(&random, index: index)), ("groups", groups), ("enabled", boolValue(&random)),
                ("needsRefresh", boolValue(&random)), ("lastRefresh", stringValue(&random, ordinary: ["2026-01-01T00:00:00Z", "bad"])),
            ], &random)
    }

    static func page(_ random: inout SeededGenerator, items: Int, item: (inout SeededGenerator, Int) -> String) -> [UInt8] {
        let listMetadata: String? =
            switch Int.random(in: 0..<10, using: &random) {
            case 0: nil
            case 1: "null"
            case 2: #"{"resourceVersion":5}"#
            default: #"{"resourceVersion":"123","continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"}"#
            }
        var members = [#""kind":"List""#, #""apiVersion":"v1""#]
        if let listMetadata { members.append("\"metadata\":\(listMetadata)") }
        if Int.random(in: 0..<12, using: &random) != 0 {
            members.append("\"items\":[" + (0..<items).map { item(&random, $0) }.joined(separator: ",") + "]")
        }
        return Array(("{" + members.joined(separator: ",") + "}\n").utf8)
    }

    // MARK: Tests

    @Test("Pages as the API writes them are read, and read the same; bent pages are read the same or left to JSONDecoder (3 kinds × 1,500 pages)")
    func generated() {
        var random = SeededGenerator(state: 0x11_57_0A_6E)
        var read = [0, 0, 0]
        for round in 0..<1_500 {
            let count = Int.random(in: 0...4, using: &random)
            if Self.agrees(Self.page(&random, items: count, item: Self.tokenItem), RecordListPage.tokens) { read[0] += 1 }
            if Self.agrees(Self.page(&random, items: count, item: Self.secretItem), RecordListPage.hashSecrets) { read[1] += 1 }
            if Self.agrees(Self.page(&random, items: count, item: Self.userItem), RecordListPage.users) { read[2] += 1 }
            _ = round
        }
        // The reader must actually read most of them (else this test would prove nothing).
        for (kind, count) in zip(["tokens", "secrets", "users"], read) { #expect(count > 150, "\(kind): \(count) of 1,500 read") }
    }

    @Test("A page the API server wrote for 500 tokens is read in full, and as JSONDecoder reads it")
    func apiShaped() throws {
        let items = (0..<500).map { index in
            #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"creationTimestamp":"2026-01-02T03:04:05Z","#
                + #""managedFields":[{"apiVersion":"cluster.cattle.io/v3","fieldsType":"FieldsV1","fieldsV1":{"f:enabled":{},"f:userName":{}},"#
                + #""manager":"agent","operation":"Update","time":"2026-01-02T03:04:05Z"}],"name":"kubeconfig-u-\#(index)","#
                + #""namespace":"cattle-system","resourceVersion":"\#(4000 + index)","uid":"0c9e-\#(index)"},"enabled":true,"#
                + #""expiresAt":"2099-01-01T00:00:00Z","lastUsedAt":"2026-02-03T04:05:06Z","userName":"u-\#(index % 50)"}"#
        }
        let bytes = Array(
            (#"{"apiVersion":"cluster.cattle.io/v3","items":["# + items.joined(separator: ",")
                + #"],"kind":"ClusterAuthTokenList","metadata":{"continue":"abc","resourceVersion":"9999"}}"#).utf8)
        let page = try #require(bytes.withUnsafeBytes(RecordListPage.tokens))
        #expect(page.items.count == 500)
        #expect(page.items[7].name == "kubeconfig-u-7" && page.items[7].userName == "u-7" && page.items[7].enabled)
        #expect(page.items[7].metadata.resourceVersion == "4007" && page.items[7].metadata.namespace == "cattle-system")
        #expect(page.resourceVersion == "9999" && page.continueToken == "abc")
        #expect(Self.agrees(bytes, RecordListPage.tokens))
    }

    @Test("What JSONDecoder reads one way and Go another, or that is not strict JSON, is left to JSONDecoder")
    func leftToJSONDecoder() {
        let token = #"{"metadata":{"name":"t"},"userName":"u","enabled":true}"#
        let cases: [String] = [
            #"{"items":[{"metadata":{"name":"t"},"enabled":true,"enabled":false}]}"#,  // duplicate: JSONDecoder keeps the first
            #"{"items":[{"metadata":{"name":"t","name":"s"}}]}"#,
            #"{"items":[\#(token)],"items":[]}"#,
            #"{"items":[{"metadata":{"name":"t\u0041"}}]}"#,  // an escape in a value read
            #"{"items":[{"user\u004eame":"u"}]}"#,  // an escape in a key
            #"{"items":[\#(token),]}"#,  // trailing comma (JSONDecoder accepts it)
            #"{"items":[{"metadata":{"name":"t"},"n":01}]}"#,  // leading zero (JSONDecoder accepts it)
            "{\"items\":[{\"metadata\":{\"name\":\"t\\u0009\"},\"x\":\"\t\"}]}",  // a raw tab in a string
            "\u{FEFF}{\"items\":[]}",  // byte-order mark
            #"{"items":[]} x"#,
            #"{"items":[null]}"#,
            #"{"items":[7]}"#,
            #"{"items":[{"metadata":7}]}"#,
            #"{"items":[{"enabled":"true"}]}"#,
            #"{"items":[{"lastUsedAt":"yesterday"}]}"#,
            #"{"metadata":{"resourceVersion":5},"items":[]}"#,
            "null", "[]", "", "{", #"{"items":"#,
            #"{"items":[{"x":"# + String(repeating: "[", count: 70) + String(repeating: "]", count: 70) + "}]}",
        ]
        for text in cases {
            let bytes = Array(text.utf8)
            #expect(bytes.withUnsafeBytes(RecordListPage.tokens) == nil, "\(text)")
        }
        // Invalid UTF-8, in a value read and in one skipped.
        for bytes in [
            Array(#"{"items":[{"userName":""#.utf8) + [0xC3, 0x28] + Array(#""}]}"#.utf8),
            Array(#"{"items":[{"x":""#.utf8) + [0xFF] + Array(#""}]}"#.utf8),
        ] {
            #expect(bytes.withUnsafeBytes(RecordListPage.tokens) == nil)
        }
    }

    @Test("Secrets: data.hash base64-decoded, stringData.hash winning, null and absent entries as the init reads them")
    func secrets() throws {
        let text =
            #"{"items":["#
            + #"{"metadata":{"name":"a"},"data":{"hash":"JDM6MTpjMkZzZEE6WkdsblpYTjA=","other":"eA=="}},"#
            + #"{"metadata":{"name":"b"},"data":{"hash":"eA=="},"stringData":{"hash":"plain"}},"#
            + #"{"metadata":{"name":"c"},"data":null,"stringData":{"hash":null}},"#
            + #"{"metadata":{"name":"d"}}"# + "]}"
        let bytes = Array(text.utf8)
        let page = try #require(bytes.withUnsafeBytes(RecordListPage.hashSecrets))
        // data.hash: the base64 of "$3:1:c2FsdA:ZGlnZXN0", a SHA3 hash that parses; the others do not.
        #expect(page.items.map { (try? $0.hash.get()) != nil } == [true, false, false, false])
        #expect(page.items.map(\.name) == ["a", "b", "c", "d"])
        #expect(Self.canonical(page.items[1]).contains(#""hash":"cGxhaW4=""#))  // "plain", from stringData
        #expect(Self.agrees(bytes, RecordListPage.hashSecrets))
        let bad = Array(#"{"items":[{"metadata":{"name":"a"},"data":{"hash":"not base64!"}}]}"#.utf8)
        #expect(bad.withUnsafeBytes(RecordListPage.hashSecrets) == nil)
    }

    @Test("Mutated pages (5,000, seeded: bytes changed, dropped, doubled) are read the same as JSONDecoder reads them, or left to it")
    func mutated() {
        var random = SeededGenerator(state: 0x11_57_0B_7F)
        let alphabet = Array(#"{}[]",:0123456789-.eEtrufalsn \ /"#.utf8) + [0x09, 0x0A, 0x00, 0xC3, 0xA9, 0xFF]
        for round in 0..<5_000 {
            let kind = round % 3
            var bytes =
                switch kind {
                case 0: Self.page(&random, items: 2, item: Self.tokenItem)
                case 1: Self.page(&random, items: 2, item: Self.secretItem)
                default: Self.page(&random, items: 2, item: Self.userItem)
                }
            for _ in 0..<Int.random(in: 1...3, using: &random) where !bytes.isEmpty {
                let at = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes[at] = alphabet.randomElement(using: &random)!
                case 1: bytes.remove(at: at)
                default: bytes.insert(bytes[at], at: at)
                }
            }
            switch kind {
            case 0: Self.agrees(bytes, RecordListPage.tokens)
            case 1: Self.agrees(bytes, RecordListPage.hashSecrets)
            default: Self.agrees(bytes, RecordListPage.users)
            }
        }
    }
}
