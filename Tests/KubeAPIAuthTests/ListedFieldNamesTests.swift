import KubeAPIAuthHTTP
import RancherAuth
import Testing
import TestSupport

@Suite("The field names a Connection header lists")
struct ListedFieldNamesTests {
    /// Whether `name` is listed, asked as a string and as bytes; both must agree.
    static func lookup(_ named: ListedFieldNames, _ name: String) -> Bool {
        let asString = named.contains(name)
        let asBytes = Array(name.utf8).withUnsafeBytes { named.contains($0) }
        #expect(asString == asBytes, "\(name.debugDescription): as a string \(asString), as bytes \(asBytes)")
        return asString
    }

    @Test("Named in any ASCII case; bytes outside ASCII compare exactly (no Unicode case or equivalence)", arguments: [false, true])
    func cases(asBytes: Bool) {
        var named = ListedFieldNames()
        #expect(named.isEmpty && !Self.lookup(named, "x-hop"))
        for name in ["X-Hop", "keep-alive", "\u{E9}t\u{E9}", "\u{212A}eep"] {
            if asBytes { Array(name.utf8).withUnsafeBytes { named.add($0) } } else { named.add(name) }
        }
        #expect(!named.isEmpty)
        #expect(Self.lookup(named, "x-hop") && Self.lookup(named, "X-HOP") && Self.lookup(named, "Keep-Alive"))
        #expect(Self.lookup(named, "\u{E9}T\u{E9}") && Self.lookup(named, "\u{212A}EEP"))
        // É is not é here, the Kelvin sign is not K, a decomposed é is not é, though Swift's
        // String equality or Unicode lowercasing would say so.
        #expect(!Self.lookup(named, "\u{C9}t\u{C9}") && !Self.lookup(named, "Keep") && !Self.lookup(named, "e\u{301}te\u{301}"))
        #expect(!Self.lookup(named, "x-ho") && !Self.lookup(named, "x-hopp") && !Self.lookup(named, ""))
    }

    @Test("Past the ordered limit, lookups by hash answer as the ordered search does (seeded lists of 0 to 40 names)")
    func hashedAgreesWithOrdered() {
        var random = SeededGenerator(state: 20)
        let alphabet = Array("aAbBxX-_1\u{E9}\u{C9}\u{212A}kK".unicodeScalars)
        func name() -> String {
            String(String.UnicodeScalarView((0..<Int.random(in: 0...3, using: &random)).map { _ in alphabet.randomElement(using: &random)! }))
        }
        func same(_ first: String, _ second: String) -> Bool {
            first.utf8.map(ASCII.lowercased) == second.utf8.map(ASCII.lowercased)
        }
        for _ in 0..<300 {
            let listed = (0..<Int.random(in: 0...40, using: &random)).map { _ in name() }
            var named = ListedFieldNames()
            for name in listed { named.add(name) }
            for query in listed.prefix(3) + (0..<20).map({ _ in name() }) {
                let expected = listed.contains { same($0, query) }
                #expect(Self.lookup(named, query) == expected, "\(listed.count) listed, query \(query.debugDescription)")
            }
        }
    }
}
