import Foundation
import RancherAuth
import Testing

/// Spec §4.5: every stored-hash vector, each its own test case.
struct HashVector: Sendable, CustomTestStringConvertible {
    let id: String
    let hash: String
    let secret: String
    var testDescription: String { id }

    init(_ id: String, _ hash: String, secret: String = "test-secret-key") {
        self.id = id
        self.hash = hash
        self.secret = secret
    }
}

let v1Digest = "JQzhvjFUqw7sLtERcKcxyLbQKyb2c4Tb2YchCRAogAvF+cJqR8FJEikdmT1yMUTko9By+2Vlo3pMJCFNGRiV1w"
let v4Digest = "SbQiBgOGiccRaq6CDwLrGxqsTBpJHQ2NiL3L99tXwoo"
let v7Key = "X6GLi3D7VUKdL6s/6hl89ogxnrcJ2wTz3L2VqaVRJipJZel+uiaF+dUKsXyk+2IHQ3xD6NqMgaWhEXBFkB2B2Q"
let v8Key = "yiyyXIMMfa3iH0HdII3VBOpGbFswibHLrDgb5mBefy9uZPJl+dQFeix0aTkpAunLPPMkVYiqdrsEdsx5NA2MFg"
let v13Digest = "zsN1zEFC7SvABTdR58o7yjIqfrI4cQ/HSYz3jBwwVnx5X+/ph4etGDIU9dvIYuy1IvnYUVe6a/Ar95xE+gfjhA"
let realisticSecret = "bcdfghjklmnpqrstvwxz2456789bcdfghjklmnpqrstvwxz2456789"

let positiveVectors: [HashVector] = [
    HashVector("V1 SHA3 salt 00..07", "$3:1:AAECAwQFBgc:\(v1Digest)"),
    HashVector("V2 SHA3 salt saltsalt", "$3:1:c2FsdHNhbHQ:HQT1TUctp6ece8+aBwkyPJHi6lg5I5U2JMAbimi+GyvyYDSwY/enD2eLGQaAD5/Sjvea7tXnPx7659nl0PAtvQ"),
    HashVector("V3 SHA3 empty salt", "$3:1::2ZomF7Jl5XXPRiiaJ58pvovXqwX/Fno0kkYRJ5uXZSJliyCi6VcdpZ0F5v2EfhZ73Ujq1cHXHDZ8sa8iD95VwQ"),
    HashVector("V4 SHA-256 salt 00..07", "$2:AAECAwQFBgc:\(v4Digest)"),
    HashVector("V5 SHA-256 salt saltsalt", "$2:c2FsdHNhbHQ:fInRrCO48DxDyPSvzX8xEHInV5NQgt2/hS6g4CpmT9c"),
    HashVector("V6 SHA-256 empty salt", "$2::LOrG82NjxiRqZMyoBc1DynoBsU6y/MUyzuw/YPL33xw"),
    HashVector("V7 scrypt n15 r8 p1", "$1:0001020304050607:15:8:1:\(v7Key)"),
    HashVector("V8 scrypt salt saltsalt", "$1:73616c7473616c74:15:8:1:\(v8Key)"),
    HashVector("V9 scrypt cheap n1 r1 p1 k16", "$1:0001020304050607:1:1:1:O0/565aO7oflEFUHuXC7cw"),
    HashVector("V10 scrypt cheap n4 r8 p1 k32", "$1:0001020304050607:4:8:1:/45XGcbps99HkeBlZkuK1CBl4VpRb7KSnL89RABqwdU"),
    HashVector(
        "V11 SHA3 realistic secret",
        "$3:1:AAECAwQFBgc:6TeyLfa09bJiQyni4aFnES+l9h6USloshcn6mE6N/ewJ1rPNVQKtemKjXLEuOu4a7vptyk37cPkFkcA9uE0rMg",
        secret: realisticSecret),
    HashVector(
        "V12 scrypt realistic secret",
        "$1:0001020304050607:15:8:1:ad4GRcpEv4ccKFtuL03KuT7k++MmHxfBHis8I4/iC06GBs0Hq4SNc9kb7d/IKTvFnIa/90nuY0+pd5jgl/wfxw",
        secret: realisticSecret),
    HashVector("V13 Rancher's unit-test vector", "$3:1:uFrxm43ggfw:\(v13Digest)", secret: String(repeating: "d", count: 54)),
]

let quirkVectors: [HashVector] = [
    HashVector("Q1 SHA-256 version +2", "$+2:AAECAwQFBgc:\(v4Digest)"),
    HashVector("Q1 SHA-256 version 02", "$02:AAECAwQFBgc:\(v4Digest)"),
    HashVector("Q2 SHA3 version +3", "$+3:1:AAECAwQFBgc:\(v1Digest)"),
    HashVector("Q2 SHA3 variation +1", "$3:+1:AAECAwQFBgc:\(v1Digest)"),
    HashVector("Q2 SHA3 variation 01", "$3:01:AAECAwQFBgc:\(v1Digest)"),
    HashVector("Q3 SHA-256 newline inside digest", "$2:AAECAwQFBgc:SbQiBgOGicc\nRaq6CDwLrGxqsTBpJHQ2NiL3L99tXwoo"),
    HashVector("Q3 SHA-256 trailing newline", "$2:AAECAwQFBgc:\(v4Digest)\n"),
    HashVector("Q4 SHA-256 non-zero unused bits", "$2:AAECAwQFBgc:SbQiBgOGiccRaq6CDwLrGxqsTBpJHQ2NiL3L99tXwop"),
    HashVector("Q5 scrypt uppercase hex salt", "$1:73616C7473616C74:15:8:1:\(v8Key)"),
    HashVector("Q5 scrypt text after the key", "$1:0001020304050607:15:8:1:\(v7Key) extra"),
    HashVector("Q5 scrypt version 01", "$01:0001020304050607:15:8:1:\(v7Key)"),
    HashVector("Q6 scrypt space before a number", "$1:0001020304050607: 15:8:1:\(v7Key)"),
]

let negativeVectors: [HashVector] = [
    HashVector("N1 SHA3 wrong secret", "$3:1:AAECAwQFBgc:\(v1Digest)", secret: "test-secret-kez"),
    HashVector("N1 SHA-256 wrong secret", "$2:AAECAwQFBgc:\(v4Digest)", secret: "test-secret-kez"),
    HashVector("N1 scrypt wrong secret", "$1:0001020304050607:4:8:1:/45XGcbps99HkeBlZkuK1CBl4VpRb7KSnL89RABqwdU", secret: "test-secret-kez"),
    HashVector("N1 scrypt n15 wrong secret", "$1:0001020304050607:15:8:1:\(v7Key)", secret: "test-secret-kez"),
    HashVector("N2 unknown version 9", "$9:not-a-real-version:salt:hash"),
    HashVector("N3 one field", "not-a-valid-hash-format"),
    HashVector("N4 empty", ""),
    HashVector("N5 version 4", "$4:some-salt-here:some-secret-here"),
    HashVector("N5 version 0", "$0:a:b"),
    HashVector("N5 version -1", "$-1:a:b"),
    HashVector("N6 version A", "$A:1:uFrxm43ggfw:\(v13Digest)"),
    HashVector("N6 double dollar", "$$3:1:uFrxm43ggfw:\(v13Digest)"),
    HashVector("N7 SHA3 without $", "3:1:AAECAwQFBgc:\(v1Digest)"),
    HashVector("N8 SHA3 three fields", "$3:1:AAECAwQFBgc"),
    HashVector("N9 SHA3 five fields", "$3:1:AAECAwQFBgc:\(v1Digest):extra"),
    HashVector("N10 SHA3 variation 2", "$3:2:AAECAwQFBgc:\(v1Digest)"),
    HashVector("N11 SHA3 empty digest", "$3:1:AAECAwQFBgc:"),
    HashVector("N11 SHA-256 empty digest", "$2:AAECAwQFBgc:"),
    HashVector("N12 SHA3 padded salt", "$3:1:AAECAwQFBgc=:\(v1Digest)"),
    HashVector("N12 SHA-256 padded digest", "$2:AAECAwQFBgc:\(v4Digest)="),
    HashVector("N13 SHA-256 colon in digest", "$2:AAECAwQFBgc:\(v4Digest):x"),
    HashVector("N14 bad base64 salt", "$3:1:#Frxm43ggfw:\(v13Digest)", secret: String(repeating: "d", count: 54)),
    HashVector("N15 truncated digest", "$3:1:AAECAwQFBgc:\(v1Digest.dropLast(2))"),
    HashVector("N16 scrypt no hex salt", "$1::15:8:1:abc"),
    HashVector("N17 scrypt odd hex digits", "$1:000102030405060:15:8:1:abc"),
    HashVector("N18 scrypt empty key", "$1:0001020304050607:15:8:1:"),
    HashVector("N18 scrypt missing key", "$1:0001020304050607:15:8:1"),
    HashVector("N19 scrypt version +1", "$+1:0001020304050607:15:8:1:\(v7Key)"),
    HashVector("N20 scrypt n 0", "$1:0001020304050607:0:8:1:\(v7Key)"),
    HashVector("N21 scrypt without $", "1:0001020304050607:15:8:1:\(v7Key)"),
]

func verifies(_ vector: HashVector) -> Bool {
    guard case .success(let hash) = StoredHash.parse(vector.hash) else { return false }
    return hash.verify(secret: vector.secret[...])
}

@Suite("Stored hash vectors (spec §4.5)")
struct HashVectorTests {
    @Test("V1–V13 verify", arguments: positiveVectors)
    func positive(_ vector: HashVector) {
        #expect(verifies(vector))
    }

    @Test("Q1–Q6 Go quirks verify", arguments: quirkVectors)
    func quirks(_ vector: HashVector) {
        #expect(verifies(vector))
    }

    @Test("N1–N21 fail", arguments: negativeVectors)
    func negative(_ vector: HashVector) {
        #expect(!verifies(vector))
    }

    /// Records keep parsed hashes, not their text; the snapshot file writes ``StoredHash/canonicalText``.
    @Test("The canonical text of every verifying vector parses back to the same hash", arguments: positiveVectors + quirkVectors)
    func canonicalTextRoundTrips(_ vector: HashVector) throws {
        let parsed = try StoredHash.parse(vector.hash).get()
        let rendered = parsed.canonicalText
        let reparsed = try StoredHash.parse(rendered).get()
        #expect(reparsed == parsed)
        #expect(reparsed.verify(secret: vector.secret[...]))
        if !parsed.isExpensive { #expect(!reparsed.verify(secret: (vector.secret + "x")[...])) }
    }

    @Test("A Secret keeps the text of a hash that does not parse, so that it fails the same way when re-read", arguments: negativeVectors)
    func unparsableHashIsKeptVerbatim(_ vector: HashVector) throws {
        let secret = HashSecret(metadata: ObjectMeta(name: "t"), hash: vector.hash)
        guard case .failure = secret.hash else { return }  // some N vectors parse and fail at verification
        let encoded = try JSONEncoder().encode(secret)
        let decoded = try JSONDecoder().decode(HashSecret.self, from: encoded)
        #expect(String(describing: decoded.hash) == String(describing: secret.hash))
    }

    @Test("A wrong secret fails every positive vector")
    func wrongSecretFailsPositiveVectors() {
        for vector in positiveVectors where !vector.hash.hasPrefix("$1:0001020304050607:15") {
            #expect(!verifies(HashVector(vector.id, vector.hash, secret: vector.secret + "x")), "\(vector.id)")
        }
    }

    @Test("Algorithms and costs are reported")
    func algorithms() throws {
        let sha3 = try StoredHash.parse(positiveVectors[0].hash).get()
        let sha256 = try StoredHash.parse(positiveVectors[3].hash).get()
        let scrypt = try StoredHash.parse(positiveVectors[6].hash).get()
        #expect(sha3.algorithm == .sha3 && !sha3.isExpensive)
        #expect(sha256.algorithm == .sha256 && !sha256.isExpensive)
        #expect(scrypt.algorithm == .scrypt && scrypt.isExpensive)
    }

    @Test("Error descriptions never quote the hash")
    func errorsDoNotLeak() {
        for vector in negativeVectors {
            if case .failure(let error) = StoredHash.parse(vector.hash), vector.hash.count > 6 {
                #expect(!String(describing: error).contains(vector.hash), "\(vector.id)")
            }
        }
    }

    @Test("scrypt parameters beyond the memory guard are refused, not run")
    func scryptMemoryGuard() {
        // N = 2^20, r = 8 needs 1 GiB.
        let result = StoredHash.parse("$1:0001020304050607:20:8:1:\(v7Key)")
        guard case .failure(.invalidParameters) = result else {
            Issue.record("expected invalidParameters, got \(result)")
            return
        }
    }

    @Test("SHA3-512 of abc matches FIPS 202 (via a hash with empty salt)")
    func sha3KnownAnswer() throws {
        let created = try HashCreation.hash(secret: "abc", algorithm: .sha3, salt: [])
        let expected =
            "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0"
        let digest = try GoBase64.decode(created.split(separator: ":", omittingEmptySubsequences: false)[3].utf8)
        #expect(digest.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() == expected)
    }
}

@Suite("Hash creation")
struct HashCreationTests {
    @Test(
        "Created hashes reproduce the vectors for the same salt",
        arguments: [
            (HashAlgorithm.sha3, positiveVectors[0].hash),
            (HashAlgorithm.sha256, positiveVectors[3].hash),
            (HashAlgorithm.scrypt, positiveVectors[6].hash),
        ])
    func reproducesVectors(algorithm: HashAlgorithm, expected: String) throws {
        let created = try HashCreation.hash(secret: "test-secret-key", algorithm: algorithm, salt: [0, 1, 2, 3, 4, 5, 6, 7])
        #expect(created == expected)
    }

    @Test(
        "Random-salt hashes verify and have Rancher's lengths",
        arguments: [
            (HashAlgorithm.sha3, 103), (HashAlgorithm.sha256, 58), (HashAlgorithm.scrypt, 113),
        ])
    func randomSalt(algorithm: HashAlgorithm, length: Int) throws {
        let first = try HashCreation.hash(secret: "s3cret", algorithm: algorithm)
        let second = try HashCreation.hash(secret: "s3cret", algorithm: algorithm)
        #expect(first.count == length)
        #expect(first != second)
        #expect(try StoredHash.parse(first).get().verify(secret: "s3cret"))
        #expect(try !StoredHash.parse(first).get().verify(secret: "s3cret "))
    }
}
