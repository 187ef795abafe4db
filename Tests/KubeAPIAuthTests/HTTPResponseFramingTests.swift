import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import TestSupport

@testable import KubeAPIAuthHTTP

/// The upstream response reader: vectors for each framing and each refusal, every vector read in
/// every two-piece split and byte by byte, and seeded responses read alike by it and by NIO's
/// `HTTPResponseDecoder` (llhttp).
@Suite("Reading upstream responses by their framing (HTTPResponseFraming)")
struct HTTPResponseFramingTests {
    /// What a reader made of some bytes: the heads' statuses, the body bytes, whether the response
    /// ended (and its trailers), or why it failed.
    struct Reading: Equatable, CustomStringConvertible {
        var statuses: [Int] = []
        var framing: HTTPResponseFraming.Framing?
        var keepAlive: Bool?
        var body = ""
        var payload = 0
        var ended = false
        var trailers: [String] = []
        var failure: String?
        var leftover = ""

        var description: String {
            "statuses \(statuses) framing \(String(describing: framing)) keepAlive \(String(describing: keepAlive)) body \(body.debugDescription) "
                + "payload \(payload) ended \(ended) trailers \(trailers) failure \(failure ?? "-") leftover \(leftover.debugDescription)"
        }
    }

    static func read(
        _ pieces: [String], mode: HTTPResponseFraming.Mode = .raw, toHEAD: Bool = false, upgrade: Bool = false, close: Bool = false
    ) -> Reading {
        var reader = HTTPResponseFraming(maxHeadBytes: 1024)
        reader.expectResponse(toHEAD: toHEAD, upgradeRequested: upgrade, mode: mode)
        var reading = Reading()
        func take(_ event: HTTPResponseFraming.Event) {
            switch event {
            case .head(let head):
                reading.statuses.append(head.status)
                reading.framing = head.framing
                reading.keepAlive = head.keepAlive
            case .body(let body, let payload):
                #expect(!reading.ended, "a body part after the end")
                reading.body += String(buffer: body)
                reading.payload += payload
            case .end(let trailers):
                reading.ended = true
                reading.trailers = trailers.map { $0.map { "\($0.name): \($0.value)" } } ?? []
            }
        }
        do {
            for piece in pieces {
                var buffer = ByteBuffer(string: piece)
                while let event = try reader.read(&buffer) {
                    take(event)
                    if case .end = event, reader.isUpgraded {
                        reading.leftover += reader.leftover(from: &buffer).map { String(buffer: $0) } ?? ""
                    }
                }
                #expect(buffer.readableBytes == 0 || reader.isUpgraded, "bytes left unread")
            }
            if close, let event = try reader.closed() { take(event) }
        } catch {
            reading.failure = error.description
        }
        return reading
    }

    static let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"

    /// A response refused (after its head was read, for a body that fails).
    static func refused(
        _ name: String, _ bytes: String, _ why: String, afterHead: Bool = false, mode: HTTPResponseFraming.Mode = .raw
    ) -> (String, String, HTTPResponseFraming.Mode, Bool, Reading) {
        (name, bytes, mode, false, Reading(statuses: afterHead ? [200] : [], failure: why))
    }

    /// (name, response bytes, mode / request, what is read).
    static let vectors: [(String, String, HTTPResponseFraming.Mode, Bool, Reading)] = [
        (
            "length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", .raw, false,
            Reading(statuses: [200], framing: .length(5), keepAlive: true, body: "hello", payload: 5, ended: true)
        ),
        (
            "length zero", "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", .raw, false,
            Reading(statuses: [200], framing: .length(0), keepAlive: true, ended: true)
        ),
        (
            "the same length twice", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", .raw, false,
            Reading(statuses: [200], framing: .length(2), keepAlive: true, body: "ok", payload: 2, ended: true)
        ),
        (
            "chunks as they came", chunked + "5\r\nhello\r\n1;name=value\r\n!\r\n0\r\n\r\n", .raw, false,
            Reading(
                statuses: [200], framing: .chunked, keepAlive: true, body: "5\r\nhello\r\n1;name=value\r\n!\r\n0\r\n\r\n", payload: 6,
                ended: true)
        ),
        (
            "chunks' payload", chunked + "5\r\nhello\r\nA \r\n0123456789\r\n0\r\n\r\n", .payload, false,
            Reading(statuses: [200], framing: .chunked, keepAlive: true, body: "hello0123456789", payload: 15, ended: true)
        ),
        (
            "trailers given with the end", chunked + "2\r\nhi\r\n0\r\nX-Check: 1\r\n\r\n", .payload, false,
            Reading(statuses: [200], framing: .chunked, keepAlive: true, body: "hi", payload: 2, ended: true, trailers: ["X-Check: 1"])
        ),
        (
            "trailers forwarded as they came", chunked + "2\r\nhi\r\n0\r\nX-Check: 1\r\n\r\n", .raw, false,
            Reading(statuses: [200], framing: .chunked, keepAlive: true, body: "2\r\nhi\r\n0\r\nX-Check: 1\r\n\r\n", payload: 2, ended: true)
        ),
        (
            "a HEAD's answer has no body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", .raw, true,
            Reading(statuses: [200], framing: HTTPResponseFraming.Framing.none, keepAlive: true, ended: true)
        ),
        (
            "204 has no body", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", .raw, false,
            Reading(statuses: [204], framing: HTTPResponseFraming.Framing.none, keepAlive: true, ended: true)
        ),
        (
            "304 has no body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", .raw, false,
            Reading(statuses: [304], framing: HTTPResponseFraming.Framing.none, keepAlive: true, ended: true)
        ),
        (
            "100 Continue is dropped",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
            .raw, false, Reading(statuses: [201], framing: .length(1), keepAlive: true, body: "x", payload: 1, ended: true)
        ),
        (
            "Connection: close", "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0\r\n\r\n", .raw, false,
            Reading(statuses: [200], framing: .length(0), keepAlive: false, ended: true)
        ),
        (
            "HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", .raw, false,
            Reading(statuses: [200], framing: .length(0), keepAlive: false, ended: true)
        ),
        (
            "HTTP/1.0 kept alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", .raw, false,
            Reading(statuses: [200], framing: .length(0), keepAlive: true, ended: true)
        ),
        (
            "no reason phrase, odd spacing", "HTTP/1.1 200\r\nX-Empty:\r\nX-Spaced: \t a b \t\r\nContent-Length: 0\r\n\r\n", .raw, false,
            Reading(statuses: [200], framing: .length(0), keepAlive: true, ended: true)
        ),
        // Refused: the connection is not reused.
        refused("HTTP/2", "HTTP/2 200 OK\r\n\r\n", "the status line is not HTTP/1.0 or HTTP/1.1"),
        refused("two-digit status", "HTTP/1.1 20 OK\r\n\r\n", "the status code is not three digits"),
        refused("status below 100", "HTTP/1.1 099 Odd\r\n\r\n", "the status code is below 100"),
        refused("bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "a control character in the reason phrase"),
        refused("space before the colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello", "a field name that is not a token"),
        refused("folded line", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\nContent-Length: 0\r\n\r\n", "a folded field line"),
        refused("a length list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", "Content-Length is not a number"),
        refused("a signed length", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", "Content-Length is not a number"),
        refused("an overlong length", "HTTP/1.1 200 OK\r\nContent-Length: 9999999999999999999\r\n\r\n", "Content-Length is not a number"),
        refused(
            "two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            "Content-Length given twice with different values"),
        refused(
            "length and chunks", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "both Content-Length and Transfer-Encoding"),
        refused("gzip coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "Transfer-Encoding other than chunked"),
        refused(
            "chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "Transfer-Encoding other than chunked"),
        refused("a control character", "HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\nContent-Length: 0\r\n\r\n", "a control character in a field value"),
        refused("a stray CR", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", "a field line does not end in CRLF"),
        refused("a chunk size that is not hexadecimal", chunked + "g\r\n", "a chunk size is not hexadecimal", afterHead: true),
        refused("a chunk without CRLF after its data", chunked + "2\r\nhiX\r\n", "a chunk's data does not end in CRLF", afterHead: true),
        refused("a chunk size of 16 digits", chunked + "1000000000000000\r\n", "a chunk size is too large", afterHead: true),
        refused("a chunk with no size", chunked + ";x\r\n", "a chunk size is not hexadecimal", afterHead: true),
        refused(
            "a length in the trailers", chunked + "0\r\nContent-Length: 5\r\n\r\n", "a framing field in the trailer section", afterHead: true,
            mode: .payload),
        refused(
            "a 101 not asked for", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "a 101 to a request that did not ask to upgrade"),
        refused(
            "a head too long", "HTTP/1.1 200 OK\r\nX-Long: " + String(repeating: "a", count: 1100) + "\r\n\r\n",
            "the response head is longer than 1024 bytes"),
    ]

    /// Whether `reading` is `expected`; for a failure, the heads read before it and its reason
    /// (body bytes before the failure depend on where the reads split: the client is cut after them).
    static func agrees(_ reading: Reading, _ expected: Reading) -> Bool {
        guard expected.failure != nil else { return reading == expected }
        return reading.failure == expected.failure && reading.statuses == expected.statuses && !reading.ended
    }

    @Test("Vectors: each framing read, each shape that could be read two ways refused", arguments: vectors.indices)
    func vector(index: Int) {
        let (name, bytes, mode, toHEAD, expected) = Self.vectors[index]
        let whole = Self.read([bytes], mode: mode, toHEAD: toHEAD)
        #expect(Self.agrees(whole, expected), "\(name): \(whole)")
        // However the bytes are split, the reading is the same.
        let utf8 = Array(bytes.utf8)
        for split in 0...utf8.count {
            let pieces = [String(decoding: utf8[..<split], as: UTF8.self), String(decoding: utf8[split...], as: UTF8.self)]
            let reading = Self.read(pieces, mode: mode, toHEAD: toHEAD)
            guard Self.agrees(reading, expected) else {
                Issue.record("\(name), split at \(split): \(reading)")
                return
            }
        }
        let bytewise = Self.read(utf8.map { String(decoding: [$0], as: UTF8.self) }, mode: mode, toHEAD: toHEAD)
        #expect(Self.agrees(bytewise, expected), "\(name), byte by byte: \(bytewise)")
    }

    @Test("A body ended by the upstream's close: read until it, then ended; cut short elsewhere, a failure")
    func closeDelimited() {
        let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
        let ended = Self.read([response, "abc", "def"], close: true)
        #expect(ended == Reading(statuses: [200], framing: .untilClose, keepAlive: false, body: "abcdef", payload: 6, ended: true))
        let cut = Self.read(["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"], close: true)
        #expect(cut.failure == "the upstream closed the connection before the response ended" && !cut.ended)
        let cutChunks = Self.read([Self.chunked + "5\r\nhello\r\n"], close: true)
        #expect(cutChunks.failure == "the upstream closed the connection before the response ended" && !cutChunks.ended)
        let midHead = Self.read(["HTTP/1.1 200 OK\r\nContent-"], close: true)
        #expect(midHead.failure != nil)
    }

    @Test("A 101 to an upgrade request: its head, its end, then the bytes that followed it belong to the other protocol")
    func upgrade() {
        let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\nConnection: Upgrade\r\n\r\n"
        let reading = Self.read([response + "\u{0}\u{1}frames"], upgrade: true)
        #expect(
            reading == Reading(statuses: [101], framing: HTTPResponseFraming.Framing.none, keepAlive: true, ended: true, leftover: "\u{0}\u{1}frames")
        )
    }

    @Test("Bytes with no request waiting, and bytes after a response's end, are out of step")
    func outOfStep() throws {
        var idle = HTTPResponseFraming()
        var stray = ByteBuffer(string: "HTTP/1.1 200 OK\r\n\r\n")
        #expect(throws: HTTPResponseFraming.Failure.self) { _ = try idle.read(&stray) }

        var reader = HTTPResponseFraming()
        reader.expectResponse(toHEAD: false, upgradeRequested: false, mode: .raw)
        var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA")
        var events = 0
        #expect(throws: HTTPResponseFraming.Failure.self) {
            while try reader.read(&buffer) != nil { events += 1 }
        }
        #expect(events == 3, "head, body and end before the extra bytes fail")
        // Once failed, the reader stays failed.
        var more = ByteBuffer(string: "x")
        #expect(throws: HTTPResponseFraming.Failure.self) { _ = try reader.read(&more) }
    }

    @Test("Several responses on one connection, each after its request; the reader is back to idle between them")
    func keepAlive() throws {
        var reader = HTTPResponseFraming()
        for index in 0..<3 {
            reader.expectResponse(toHEAD: false, upgradeRequested: false, mode: .raw)
            var buffer = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n\(index)")
            var body = ""
            var ended = false
            while let event = try reader.read(&buffer) {
                if case .body(let part, _) = event { body += String(buffer: part) }
                if case .end = event { ended = true }
            }
            #expect(body == "\(index)" && ended && !reader.isReading)
        }
    }

    // MARK: Against NIO's decoder

    static func seededResponse(_ random: inout SeededGenerator) -> (bytes: String, chunked: Bool) {
        let statuses = [200, 201, 204, 304, 404, 409, 500]
        let status = statuses[Int(random.next() % UInt64(statuses.count))]
        var text = "HTTP/1.1 \(status) Reason\r\n"
        let names = ["Content-Type", "audit-id", "X-Kubernetes-PF-FlowSchema-UID", "Cache-Control", "Date", "Warning", "X-Empty"]
        for _ in 0..<Int(random.next() % 6) {
            let name = names[Int(random.next() % UInt64(names.count))]
            let valueLength = Int(random.next() % 20)
            let value = String((0..<valueLength).map { _ in Character(Unicode.Scalar(UInt8(0x21 + random.next() % 94))) })
            text += "\(name): \(value)\r\n"
        }
        var payload = ""
        for _ in 0..<Int(random.next() % 300) { payload.append(Character(Unicode.Scalar(UInt8(0x20 + random.next() % 95)))) }
        let noBody = status == 204 || status == 304
        if random.next() % 2 == 0 || noBody {
            text += "Content-Length: \(noBody ? 0 : payload.utf8.count)\r\n\r\n" + (noBody ? "" : payload)
            return (text, false)
        }
        text += "Transfer-Encoding: chunked\r\n\r\n"
        var rest = Substring(payload)
        while !rest.isEmpty {
            let size = min(rest.count, 1 + Int(random.next() % 64))
            let extensionText = random.next() % 4 == 0 ? ";ext=\(size)" : ""
            text += String(size, radix: 16, uppercase: random.next() % 2 == 0) + extensionText + "\r\n" + rest.prefix(size) + "\r\n"
            rest = rest.dropFirst(size)
        }
        text += "0\r\n"
        if random.next() % 3 == 0 { text += "X-Trailer: done\r\n" }
        return (text + "\r\n", true)
    }

    /// What NIO's decoder (llhttp) reads from the same bytes after a GET: status, fields, payload, trailers.
    static func nioReading(_ pieces: [String]) throws -> (status: Int, headers: [String], payload: String, trailers: [String], ended: Bool) {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([HTTPRequestEncoder(), ByteToMessageHandler(HTTPResponseDecoder())])
        try channel.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")))
        try channel.writeOutbound(HTTPClientRequestPart.end(nil))
        var result = (status: 0, headers: [String](), payload: "", trailers: [String](), ended: false)
        for piece in pieces {
            try channel.writeInbound(ByteBuffer(string: piece))
            while let part = try channel.readInbound(as: HTTPClientResponsePart.self) {
                switch part {
                case .head(let head):
                    result.status = Int(head.status.code)
                    result.headers = head.headers.map { "\($0.name): \($0.value)" }
                case .body(let body): result.payload += String(buffer: body)
                case .end(let trailers):
                    result.trailers = trailers.map { $0.map { "\($0.name): \($0.value)" } } ?? []
                    result.ended = true
                }
            }
        }
        _ = try? channel.finish()
        return result
    }

    @Test("Seeded responses in random pieces: the same status, fields, payload and trailers as NIO's decoder reads (2,000 responses)")
    func agreesWithNIO() throws {
        var random = SeededGenerator(state: 0x5EED_F4A3)
        for round in 0..<2000 {
            let (bytes, _) = Self.seededResponse(&random)
            let utf8 = Array(bytes.utf8)
            var pieces: [String] = []
            var start = 0
            while start < utf8.count {
                let end = min(utf8.count, start + 1 + Int(random.next() % 97))
                pieces.append(String(decoding: utf8[start..<end], as: UTF8.self))
                start = end
            }
            let nio = try Self.nioReading(pieces)
            var reader = HTTPResponseFraming()
            reader.expectResponse(toHEAD: false, upgradeRequested: false, mode: .payload)
            var ours = (status: 0, headers: [String](), payload: "", trailers: [String](), ended: false)
            for piece in pieces {
                var buffer = ByteBuffer(string: piece)
                while let event = try reader.read(&buffer) {
                    switch event {
                    case .head(let head):
                        ours.status = head.status
                        ours.headers = head.headers.map { "\($0.name): \($0.value)" }
                    case .body(let body, _): ours.payload += String(buffer: body)
                    case .end(let trailers):
                        ours.trailers = trailers.map { $0.map { "\($0.name): \($0.value)" } } ?? []
                        ours.ended = true
                    }
                }
            }
            guard ours == nio else {
                Issue.record("round \(round): ours \(ours), NIO's \(nio), bytes \(bytes.debugDescription)")
                return
            }
            // Raw mode hands on exactly the body's bytes as they came.
            let raw = Self.read(pieces, mode: .raw)
            let headLength = bytes.utf8.count - raw.body.utf8.count
            #expect(raw.ended && raw.payload == nio.payload.utf8.count && Array(bytes.utf8.dropFirst(headLength)) == Array(raw.body.utf8))
        }
    }
}
