import RancherAuth
import Testing

@Suite("Go-compatible parsers")
struct GoParsingTests {
    @Test(
        "RawStdEncoding decoding",
        arguments: [
            ("", [UInt8]()), ("QQ", [0x41]), ("QUI", [0x41, 0x42]), ("QUJD", [0x41, 0x42, 0x43]),
            ("QU\nJD", [0x41, 0x42, 0x43]), ("QUJD\r\n", [0x41, 0x42, 0x43]), ("QR", [0x41]),
        ])
    func base64Decodes(input: String, expected: [UInt8]) throws {
        #expect(try GoBase64.decode(input.utf8) == expected)
    }

    @Test(
        "RawStdEncoding rejects padding, junk and a lone final character",
        arguments: [
            "QQ==", "QUJD=", "Q", "QUJDR", "QU JD", "QU_D", "QU-D", "#QUJ",
        ])
    func base64Rejects(input: String) {
        #expect(throws: GoBase64.DecodingError.self) { try GoBase64.decode(input.utf8) }
    }

    @Test("Encoding round-trips without padding")
    func base64RoundTrip() throws {
        for length in 0..<20 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let encoded = GoBase64.encode(bytes)
            #expect(!encoded.contains("="))
            #expect(try GoBase64.decode(encoded.utf8) == bytes)
        }
    }

    @Test("Padded decoding for Secret data")
    func paddedDecoding() {
        #expect(GoBase64.decodePadded("QQ==".utf8) == [0x41])
        #expect(GoBase64.decodePadded("QUJD".utf8) == [0x41, 0x42, 0x43])
        #expect(GoBase64.decodePadded("QQ".utf8) == nil)
        #expect(GoBase64.decodePadded("Q===".utf8) == nil)
        // Line breaks anywhere are skipped before the length and the padding are looked at.
        #expect(GoBase64.decodePadded("QU\r\nJD\n".utf8) == [0x41, 0x42, 0x43])
        #expect(GoBase64.decodePadded("QQ=\n=".utf8) == [0x41])
        #expect(GoBase64.decodePadded("QQ\n".utf8) == nil)
        #expect(GoBase64.decodePadded("".utf8) == [])
        #expect(GoBase64.decodePadded("====".utf8) == nil)
        #expect(GoBase64.decodePadded("QUJD".utf8.dropFirst(0)) == [0x41, 0x42, 0x43])  // not contiguous storage
        // The same answers as the filtering reading on every short string of these bytes.
        let alphabet = Array("QUJ=\r\nD".utf8)
        func model(_ input: [UInt8]) -> [UInt8]? {
            var cleaned = input.filter { $0 != 0x0D && $0 != 0x0A }
            guard cleaned.count % 4 == 0 else { return nil }
            var padding = 0
            while padding < 2, cleaned.last == UInt8(ascii: "=") {
                cleaned.removeLast()
                padding += 1
            }
            return try? GoBase64.decode(cleaned)
        }
        var inputs: [[UInt8]] = [[]]
        for _ in 0..<6 { inputs = inputs.flatMap { prefix in alphabet.map { prefix + [$0] } } + [[]] }
        for input in Set(inputs) { #expect(GoBase64.decodePadded(input) == model(input), "\(input)") }
    }

    @Test(
        "Atoi accepts",
        arguments: [
            ("0", Int64(0)), ("3", 3), ("+2", 2), ("02", 2), ("-1", -1), ("-0", 0),
            ("9223372036854775807", Int64.max), ("-9223372036854775808", Int64.min),
        ])
    func atoiAccepts(text: String, value: Int64) {
        #expect(GoStrconv.atoi(text) == value)
    }

    @Test("Atoi rejects", arguments: ["", "+", "-", " 1", "1 ", "0x1", "1_000", "1e3", "9223372036854775808", "A"])
    func atoiRejects(text: String) {
        #expect(GoStrconv.atoi(text) == nil)
    }

    @Test(
        "RFC 3339 parses",
        arguments: [
            ("1970-01-01T00:00:00Z", Timestamp(seconds: 0)),
            ("2026-01-15T10:00:00Z", Timestamp(seconds: 1_768_471_200)),
            ("2026-01-15T11:00:00+01:00", Timestamp(seconds: 1_768_471_200)),
            ("2026-01-15T09:30:00-00:30", Timestamp(seconds: 1_768_471_200)),
            ("2026-01-15T10:00:00.5Z", Timestamp(seconds: 1_768_471_200, nanoseconds: 500_000_000)),
            ("2026-01-15T10:00:00.1234567891Z", Timestamp(seconds: 1_768_471_200, nanoseconds: 123_456_789)),
            ("2024-02-29T00:00:00Z", Timestamp(seconds: 1_709_164_800)),
            ("1969-12-31T23:59:59Z", Timestamp(seconds: -1)),
        ])
    func rfc3339Parses(text: String, expected: Timestamp) {
        #expect(RFC3339.parse(text) == expected)
    }

    @Test(
        "RFC 3339 rejects",
        arguments: [
            "", "garbage", "2026-01-15", "2026-01-15t10:00:00Z", "2026-01-15T10:00:00z", "2026-01-15T10:00:00",
            "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-01-15T24:00:00Z", "2026-01-15T10:60:00Z",
            "2026-01-15T10:00:60Z", "2026-01-15T10:00:00+24:00", "2026-01-15T10:00:00+0100", "2026-01-15 10:00:00Z",
            "2026-01-15T10:00:00.Z", "+2026-01-15T10:00:00Z",
        ])
    func rfc3339Rejects(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test("RFC 3339 formatting is UTC with whole seconds")
    func rfc3339Formats() {
        #expect(RFC3339.format(Timestamp(seconds: 1_768_471_200, nanoseconds: 999)) == "2026-01-15T10:00:00Z")
        #expect(RFC3339.format(Timestamp(seconds: -1)) == "1969-12-31T23:59:59Z")
        for seconds in stride(from: Int64(-5_000_000_000), to: 5_000_000_000, by: 86_399 * 997) {
            let stamp = Timestamp(seconds: seconds)
            #expect(RFC3339.parse(RFC3339.format(stamp)) == stamp)
        }
    }

    @Test(
        "Refresh period follows Go's ParseInt and Duration overflow",
        arguments: [
            (String?.none, RefreshPeriod.disabled), ("", .disabled), ("abc", .disabled), (" 60", .disabled),
            ("60s", .disabled), ("1e3", .disabled), ("-5", .disabled), ("0", .enabled(nanoseconds: 0)),
            ("+60", .enabled(nanoseconds: 60_000_000_000)), ("60", .enabled(nanoseconds: 60_000_000_000)),
            ("9223372036854775807", .disabled),
        ])
    func refreshPeriod(value: String?, expected: RefreshPeriod) {
        #expect(RefreshPeriod(configMapValue: value) == expected)
    }
}

@Suite("Bearer token split (spec §2.4)")
struct BearerTokenTests {
    @Test(
        "Rancher-shaped tokens",
        arguments: [
            ("tokenName:secretValue", "tokenName", "secretValue"),
            ("tokenName:secret:with:colons", "tokenName", "secret:with:colons"),
            ("ext/token-abc12:secretValue", "token-abc12", "secretValue"),
            ("ext/ext/a:b", "ext/a", "b"),
            ("EXT/a:b", "EXT/a", "b"),
            (":x", "", "x"),
            ("ext/:x", "", "x"),
            ("a:", "a", ""),
        ])
    func splits(token: String, accessKey: String, secret: String) throws {
        let bearer = try #require(RancherBearerToken(token))
        #expect(bearer.accessKey == accessKey)
        #expect(bearer.secret == secret)
    }

    @Test("Tokens without a colon are not Rancher tokens", arguments: ["nocolon", "", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"])
    func notRancher(token: String) {
        #expect(RancherBearerToken(token) == nil)
    }
}
