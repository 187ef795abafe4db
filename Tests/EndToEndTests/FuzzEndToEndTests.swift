import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TestSupport

/// Records with odd values: every hash vector that must fail, odd expiry strings, missing and
/// disabled users; plus one valid token.
func hostileRecords(in directory: String, validSecret: String, generator: inout SeededGenerator) throws -> [String] {
    let validHash = try Binary.run(["hash"], input: validSecret).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    Credentials.register(hash: validHash)
    var yaml = """
        apiVersion: cluster.cattle.io/v3
        kind: ClusterUserAttribute
        metadata: {name: u-fuzz}
        groups: ["g://fuzz", "a&b<c>"]
        enabled: true
        ---
        apiVersion: cluster.cattle.io/v3
        kind: ClusterUserAttribute
        metadata: {name: u-off}
        enabled: false
        ---
        apiVersion: cluster.cattle.io/v3
        kind: ClusterAuthToken
        metadata: {name: valid}
        userName: u-fuzz
        enabled: true
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: valid}
        stringData: {hash: "\(validHash)"}

        """
    let oddHashes = [
        "", "not-a-hash", "$9:x:y", "$3:1:AAECAwQFBgc=:abc", "$2::", "$1::15:8:1:abc", "$1:00:0:8:1:AA", "$1:00:62:8:1:AA",
        "$3:2:AA:AA", "$$3:1:AA:AA", "$3:1:\u{0}:AA", "$2:AAAA:" + String(repeating: "A", count: 5000),
    ]
    let oddExpiry = ["", "garbage", "2099-13-01T00:00:00Z", "2099-01-01T00:00:00+25:00", "1970-01-01T00:00:00Z", "2099-01-01t00:00:00z", "0"]
    var names: [String] = []
    for index in 0..<40 {
        let name = "odd\(index)"
        names.append(name)
        let user = ["u-fuzz", "u-off", "u-missing"][Int(generator.next() % 3)]
        let expiry = oddExpiry[Int(generator.next() % UInt64(oddExpiry.count))]
        let hash = oddHashes[Int(generator.next() % UInt64(oddHashes.count))]
        let legacy = generator.next() % 2 == 0
        yaml += """
            ---
            apiVersion: cluster.cattle.io/v3
            kind: ClusterAuthToken
            metadata: {name: \(name)}
            userName: \(user)
            enabled: \(generator.next() % 4 != 0)
            expiresAt: "\(expiry)"
            hash: \(legacy ? JSONString(hash) : "\"\"")
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: \(name)}
            stringData: {hash: \(JSONString(hash))}

            """
    }
    try yaml.write(toFile: (directory as NSString).appendingPathComponent("fuzz.yaml"), atomically: true, encoding: .utf8)
    return names
}

func JSONString(_ value: String) -> String {
    String(decoding: try! JSONEncoder().encode(value), as: UTF8.self)
}

/// Bodies a hostile or broken client might send.
func hostileBody(_ generator: inout SeededGenerator, validToken: String, names: [String]) -> String {
    func pick<T>(_ values: [T]) -> T { values[Int(generator.next() % UInt64(values.count))] }
    func randomString(_ maximum: Int) -> String {
        let pieces = ["a", ":", "ext/", "\\u0000", "é", "😀", "\\\"", "\\\\", " ", "valid", "/", "\\n", "%", "\u{202E}"]
        return (0..<Int(generator.next() % UInt64(maximum + 1))).map { _ in pick(pieces) }.joined()
    }
    let secret = String(validToken.drop { $0 != ":" }.dropFirst())
    let tokens = [
        validToken, "ext/" + validToken, "valid:" + secret.dropLast() + "x", "valid:", ":" + secret, "valid",
        pick(names) + ":" + secret, pick(names) + ":" + randomString(20), randomString(40), randomString(400),
        "valid:" + String(repeating: "x", count: Int(generator.next() % 9000)),
        String(repeating: "ext/", count: 50) + "valid:" + secret, "VALID:" + secret,
    ]
    let token = pick(tokens)
    let apiVersion = pick(["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1", "", "v1", "authentication.k8s.io/v2"])
    let wellFormed = #"{"apiVersion":"\#(apiVersion)","kind":"TokenReview","spec":{"token":"\#(token)","audiences":["x"]},"status":{}}"#
    switch generator.next() % 10 {
    case 0, 1, 2, 3:
        return wellFormed
    case 4:
        // Byte-level damage to a valid review.
        var bytes = Array(wellFormed.utf8)
        for _ in 0..<(1 + generator.next() % 4) where !bytes.isEmpty {
            let index = Int(generator.next() % UInt64(bytes.count))
            switch generator.next() % 3 {
            case 0: bytes[index] = UInt8(truncatingIfNeeded: generator.next())
            case 1: bytes.remove(at: index)
            default: bytes.insert(pick(Array("{}[]\":,\\".utf8)), at: index)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    case 5:
        return String(wellFormed.prefix(Int(generator.next() % UInt64(wellFormed.count))))
    case 6:
        // Wrong types and odd structure.
        return pick([
            #"{"kind":"TokenReview","spec":{"token":["\#(validToken)"]}}"#, #"{"kind":["TokenReview"],"spec":{"token":"\#(validToken)"}}"#,
            #"{"kind":"TokenReview","spec":{"token":{"token":"\#(validToken)"}}}"#, #"{"kind":"TokenReview","spec":[]}"#,
            "[" + wellFormed + "]", wellFormed + wellFormed, #"{"kind":"TokenReview","spec":{"token":"\#(validToken)"},}"#,
            #"{"KIND":"tokenreview","spec":{"token":"\#(validToken)"}}"#, "null", "true", "1e999", #""\#(validToken)""#,
        ])
    case 7:
        let depth = Int(generator.next() % 200)
        return #"{"kind":"TokenReview","spec":{"token":"\#(token)"},"x":"# + String(repeating: "[", count: depth)
            + String(repeating: "]", count: depth) + "}"
    case 8:
        return #"{"kind":"TokenReview","spec":{"token":"\#(token)"},"pad":""# + String(repeating: "p", count: Int(generator.next() % 80_000)) + #""}"#
    default:
        return randomString(200)
    }
}

@Suite("Fuzzing the real binary")
struct FuzzEndToEndTests {
    @Test("10,000 seeded hostile reviews: no crash, no unexpected status, authenticated only for the valid token")
    func hostileReviews() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["FUZZ_SEED"] ?? "") ?? 0x5EED_CAFE
        var generator = SeededGenerator(state: seed)
        let scratch = try TemporaryDirectory()
        let secret = "fuzzsecretbcdfghjklmnpqrstvwxz2456789bcdfghjklmnpqrstv"
        Credentials.register(secret: secret)
        let validToken = "valid:" + secret
        let names = try hostileRecords(in: scratch.path, validSecret: secret, generator: &generator)
        let service = try ServiceProcess(global: [], serve: ["--records-dir", scratch.path, "--max-failures", "0"])
        #expect(!service.output.contains("records file ignored"))
        let url = service.baseURL + "/v1/authenticate"
        var bodies: [String] = []
        for _ in 0..<10_000 { bodies.append(hostileBody(&generator, validToken: validToken, names: names)) }

        var statuses: [UInt: Int] = [:]
        var authenticatedCount = 0
        let concurrency = 8
        try await withThrowingTaskGroup(of: [(UInt, String, String)].self) { group in
            for worker in 0..<concurrency {
                let slice = stride(from: worker, to: bodies.count, by: concurrency).map { bodies[$0] }
                group.addTask {
                    var results: [(UInt, String, String)] = []
                    for body in slice {
                        var request = HTTPClientRequest(url: url)
                        request.method = .POST
                        request.body = .bytes(ByteBuffer(string: body))
                        let response = try await endToEndClient.execute(request, timeout: .seconds(30))
                        let answer = String(buffer: try await response.body.collect(upTo: 1 << 20))
                        results.append((response.status.code, body, answer))
                    }
                    return results
                }
            }
            for try await results in group {
                for (status, body, answer) in results {
                    statuses[status, default: 0] += 1
                    #expect([200, 400, 413].contains(status), "seed \(seed): status \(status) for \(body.prefix(200))")
                    if answer.contains(#""authenticated":true"#) {
                        authenticatedCount += 1
                        // Only the valid token authenticates (damage elsewhere in the body may be harmless), as its one user.
                        #expect(body.contains(validToken), "seed \(seed): \(body.prefix(300))")
                        #expect(answer.contains(#""username":"u-fuzz""#))
                    }
                }
            }
        }
        #expect(statuses.values.reduce(0, +) == 10_000)
        #expect(authenticatedCount > 100)
        #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", service.baseURL + "/livez"]) == "200")
        #expect(try service.stop() == 0)
    }
}
