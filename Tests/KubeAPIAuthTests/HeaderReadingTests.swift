import Foundation
import KubeAPIAuthHTTP
import KubeAPIAuthProxy
import NIOHTTP1
import RancherAuth
import TestSupport
import Testing

/// The proxy reads header names and values as bytes (no lowercased copies, no Foundation
/// trimming) on every request. These tests hold the byte readings to the character readings they
/// replaced, written out here as the models: same answers on ASCII input, including every corner
/// of spaces, tabs, commas and case, and on input with non-ASCII characters. `Connection` is the
/// exception: it is now read by bytes on any input, as Go's reverse proxy reads it, and its model
/// says so (`modelConnectionNames`).
@Suite("Header reading as bytes agrees with the character reading")
struct HeaderReadingTests {
    /// The reading `BearerAuthorization.token` had, by characters.
    static func modelToken(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingPrefix(while: { $0 == " " })
        return token.isEmpty ? nil : String(token)
    }

    /// The reading of a comma-separated list the proxy had (Connection, Transfer-Encoding).
    static func modelList(_ value: String) -> [String] {
        value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    }

    /// The names a `Connection` value lists, as Go's reverse proxy reads them: its bytes split at
    /// commas, spaces and tabs trimmed, ASCII letters in either case, other bytes as they are. (The
    /// proxy once read `Connection` by characters, as `modelList`: a no-break space was trimmed,
    /// the Kelvin sign was a K, a comma followed by a combining accent did not split.)
    static func modelConnectionNames(_ value: String) -> Set<[UInt8]> {
        let blank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        return Set(
            Array(value.utf8).split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { element in
                Array(element.drop(while: blank).reversed().drop(while: blank).reversed()).map(ASCII.lowercased)
            })
    }

    /// The response-header cleaning the proxy has: the hop-by-hop fields and those `Connection` names.
    static func modelClean(_ headers: HTTPHeaders) -> HTTPHeaders {
        let hopByHop: Set<String> = [
            "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
            "proxy-authenticate", "proxy-authorization",
        ]
        var named: Set<[UInt8]> = []
        for value in headers["connection"] { named.formUnion(modelConnectionNames(value)) }
        var result = headers
        for (name, _) in headers where hopByHop.contains(name.lowercased()) || named.contains(name.utf8.map(ASCII.lowercased)) {
            result.remove(name: name)
        }
        return result
    }

    /// Random text from pieces that matter to these readings: both cases of the words, spaces,
    /// tabs, commas, a no-break space, a combining accent after a space, other letters.
    static func text(_ random: inout SeededGenerator, pieces: [String], maxCount: Int = 6) -> String {
        (0..<Int.random(in: 0...maxCount, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
    }

    static let tokenPieces = [
        "Bearer", "bearer", "BEARER", "beaRer", "Basic", " ", "  ", "\t", "abc", "t-1:s3cr3t", "x", "\u{00A0}", " \u{0301}", "é",
    ]
    static let listPieces = [
        "keep-alive", "Keep-Alive", "Upgrade", "upgrade", "close", "X-Hop", "te", ",", ", ", " ,", " ", "\t", "\u{00A0}", "é", "K",
    ]

    @Test("Authorization: the token as the character reading finds it, on 20,000 seeded headers and the corner cases")
    func bearerToken() {
        let corners = [
            "Bearer abc", "bearer abc", "BEARER abc", "Bearer  abc", "  Bearer abc", "Bearer", "Bearer ", "Bearer  ", "Bearer\tabc",
            "Basic abc", "Bearerabc", "", " ", "Bearer abc def", "Bearer abc ", "Bearer \u{0301}abc", "Bearer é", "\u{00A0}Bearer abc",
        ]
        Self.expectSame(corners, seed: 0x7E57_0001, pieces: Self.tokenPieces, BearerAuthorization.token, Self.modelToken)
    }

    /// `fast` and `model` give the same answer on `corners` and on 20,000 texts seeded with `seed`.
    static func expectSame<Answer: Equatable>(
        _ corners: [String], seed: UInt64, pieces: [String], _ fast: (String) -> Answer, _ model: (String) -> Answer,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        var random = SeededGenerator(state: seed)
        for text in corners + (0..<20_000).map({ _ in Self.text(&random, pieces: pieces) }) {
            #expect(fast(text) == model(text), "\(text.debugDescription)", sourceLocation: sourceLocation)
        }
    }

    @Test("A comma-separated list: trimmed and lowercased elements as the character reading gives them, 20,000 seeded values")
    func listElements() {
        let corners = ["keep-alive", " Keep-Alive , Upgrade ", ",,", " , ", "\tte\t", "\u{00A0}upgrade", "a,\u{00A0},b", ""]
        Self.expectSame(corners, seed: 0x7E57_0002, pieces: Self.listPieces, ProxyRequestPolicy.listElements, Self.modelList)
    }

    @Test("Response headers: the headers go that a byte reading of Connection names (as Go's), 5,000 seeded header lists")
    func responseHeaders() {
        let names = [
            "Content-Type", "content-length", "Connection", "CONNECTION", "Keep-Alive", "Transfer-Encoding", "TE", "Trailer", "Upgrade",
            "Proxy-Authenticate", "X-Hop", "x-hop", "Audit-Id", "Date",
        ]
        var random = SeededGenerator(state: 0x7E57_0003)
        for _ in 0..<5_000 {
            let headers = HTTPHeaders(
                (0..<Int.random(in: 0...8, using: &random)).map { _ in
                    (names.randomElement(using: &random)!, Self.text(&random, pieces: Self.listPieces, maxCount: 3))
                })
            let cleaned = ProxyResponseHeaders.clean(headers)
            #expect(cleaned == Self.modelClean(headers), "\(headers)")
        }
        // What kube-apiserver and nginx send: nothing but the framing goes.
        let nginx = HTTPHeaders([("Server", "nginx"), ("Content-Type", "application/json"), ("Content-Length", "2"), ("Connection", "keep-alive")])
        #expect(
            ProxyResponseHeaders.clean(nginx) == HTTPHeaders([("Server", "nginx"), ("Content-Type", "application/json"), ("Content-Length", "2")]))
        let watch = HTTPHeaders([("Audit-Id", "1"), ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
        #expect(ProxyResponseHeaders.clean(watch) == HTTPHeaders([("Audit-Id", "1"), ("Content-Type", "application/json")]))
    }

    @Test("ASCII comparisons: either case of ASCII letters, other bytes exactly; trimming of spaces and tabs only")
    func asciiHelpers() {
        #expect(ASCII.equalsIgnoringCase("Content-Length", "content-length"))
        #expect(ASCII.equalsIgnoringCase("CONTENT-LENGTH", "content-length"))
        #expect(!ASCII.equalsIgnoringCase("content-lengths", "content-length"))
        #expect(!ASCII.equalsIgnoringCase("content-lengt", "content-length"))
        #expect(!ASCII.equalsIgnoringCase("\u{212A}eep-alive", "keep-alive"))  // Kelvin sign: not an ASCII K
        #expect(!ASCII.equalsIgnoringCase("[", "{"))  // 0x5B is not a capital letter
        #expect(ASCII.equalsIgnoringCase("", ""))
        #expect(ASCII.hasPrefixIgnoringCase("Impersonate-User", "impersonate-"))
        #expect(!ASCII.hasPrefixIgnoringCase("Impersonate", "impersonate-"))
        #expect(ASCII.trimmingSpacesAndTabs(" \t a b \t") == "a b")
        #expect(ASCII.trimmingSpacesAndTabs(" \t ") == "")
        #expect(ASCII.trimmingSpacesAndTabs("\u{00A0}a") == "\u{00A0}a")
        for byte in UInt8.min...UInt8.max {
            let expected = (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 32 : byte
            #expect(ASCII.lowercased(byte) == expected)
        }
    }
}
