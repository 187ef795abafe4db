import NIOCore
import NIOHTTP1
import RancherAuth

/// Reads the HTTP/1.1 responses of an upstream connection by their framing: each head is parsed
/// (status, fields as places in its bytes, how its body is framed), and the body is handed on as
/// the bytes that arrived — framing included (`raw`, for a client connection that gets the same
/// framing) or payload only (`payload`, for an HTTP/2 stream) — until the framing says it ended.
///
/// Why not NIO's `HTTPResponseDecoder`: the proxy forwards responses to HTTP/1.1 clients with
/// their framing unchanged, so a parse of every field into strings and an encode of them again
/// is work nobody reads. Decoding and re-encoding responses cost 12.7 µs of the NIO codec
/// forwarder's 47.4 µs per request (docs/benchmarks.md, the floors under the proxy); this reader
/// looks at each head's bytes once and copies body bytes not at all.
///
/// It is strict where a lenient reader could be made to disagree with the client about where a
/// response ends (the upstream connection is shared by every user, so a response read with the
/// wrong length would hand one user's answer to the next request): a head must be
/// `HTTP/1.0` or `HTTP/1.1`, lines end in CRLF, field names are tokens with no space before the
/// colon, values carry no control character, no line is folded, `Content-Length` is digits (one
/// value, repeated only identically), `Transfer-Encoding` is `chunked` alone and never beside a
/// `Content-Length`, chunk sizes are hexadecimal of bounded length and each chunk's data ends in
/// CRLF. Anything else is a ``Failure``: the connection is not reused.
///
/// Informational responses (`1xx` but `101`) are read and dropped, as NIO's decoder does by
/// default; a `101` is taken only for a request that asked to upgrade, after which every byte
/// belongs to the other protocol (``leftover()``). The value is pure: bytes in, events out.
public struct HTTPResponseFraming: Sendable {
    /// How the body of a response is framed.
    public enum Framing: Equatable, Sendable {
        /// No body (a response to `HEAD`, a `204`, a `304`, a `101`).
        case none
        case length(Int)
        case chunked
        /// Everything until the upstream closes its connection (a response without length).
        case untilClose
    }

    /// How body bytes are handed on.
    public enum Mode: Sendable {
        /// As they arrived, chunk framing and trailer section included.
        case raw
        /// The chunks' data only; trailers parsed and given with the end.
        case payload
    }

    public struct Failure: Error, Equatable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// A response head: its bytes and where its parts are in them.
    public struct Head: Sendable {
        /// The status line, the field lines and the empty line that ends them.
        public let bytes: ByteBuffer
        public let version: HTTPVersion
        public let status: Int
        /// Each field's name and (trimmed) value, as offsets in ``bytes``'s readable bytes.
        public let fields: [(name: Range<Int>, value: Range<Int>)]
        public let framing: Framing
        /// The connection can carry another request after this response.
        public let keepAlive: Bool

        /// The length of the status line, its CRLF included.
        public let statusLineLength: Int

        public func name(_ index: Int) -> String { text(fields[index].name) }
        public func value(_ index: Int) -> String { text(fields[index].value) }

        private func text(_ range: Range<Int>) -> String {
            bytes.getString(at: bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
        }

        /// Whether field `index` is named `lowercase` (which must be in lowercase), in any case.
        public func nameIs(_ index: Int, _ lowercase: String) -> Bool {
            bytes.withUnsafeReadableBytes { HTTPResponseFraming.matches($0, fields[index].name, lowercase) }
        }

        /// The fields as NIO's headers (for an HTTP/2 stream, which re-frames the response).
        public var headers: HTTPHeaders {
            HTTPHeaders(fields.indices.map { (name($0), value($0)) })
        }
    }

    public enum Event {
        case head(Head)
        /// Body bytes, and how many of them are payload (all of them but the chunk framing).
        case body(ByteBuffer, payload: Int)
        /// The response ended (trailers only in `payload` mode, when there were any).
        case end(trailers: HTTPHeaders?)
    }

    private enum State: Sendable {
        /// No request is waiting for its response: any byte is out of step.
        case idle
        case head
        case length(remaining: Int)
        case chunkSize(ChunkLine)
        case chunkSizeLF(size: Int)
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        case trailers(lineLength: Int)
        case trailerLF(lineLength: Int)
        case untilClose
        /// The body ended: ``Event/end(trailers:)`` is next.
        case ending
        /// After a `101`: the bytes belong to the upgraded protocol.
        case upgraded
        case failed
    }

    private struct ChunkLine: Sendable {
        var size = 0
        var digits = 0
        var length = 0
        /// After the size: whitespace, then an extension, may follow.
        var afterSize = false
        var inExtension = false
    }

    /// The longest response head taken (status line and fields).
    public let maxHeadBytes: Int
    /// The longest chunk-size line and trailer section taken.
    public static let maxChunkLineBytes = 4096
    public static let maxTrailerBytes = 64 * 1024

    private var state = State.idle
    private var mode = Mode.raw
    private var requestWasHEAD = false
    private var requestAsksUpgrade = false
    /// A head's bytes while they arrive in more than one read.
    private var partialHead: ByteBuffer?
    /// The trailer section's bytes (checked, and parsed in `payload` mode).
    private var trailerBytes: ByteBuffer?
    /// The response being read is a `101`: the upgraded protocol follows its end.
    private var upgradeAtEnd = false

    public init(maxHeadBytes: Int = 256 * 1024) {
        self.maxHeadBytes = maxHeadBytes
    }

    /// A request went out: its response is read next.
    public mutating func expectResponse(toHEAD: Bool, upgradeRequested: Bool, mode: Mode) {
        state = .head
        self.mode = mode
        requestWasHEAD = toHEAD
        requestAsksUpgrade = upgradeRequested
        upgradeAtEnd = false
        partialHead = nil
        trailerBytes = nil
    }

    /// Whether a response is being read (a request is waiting for all of it).
    public var isReading: Bool {
        switch state {
        case .idle, .upgraded, .failed: return false
        default: return true
        }
    }

    /// Whether a `101` was read: what follows is the upgraded protocol's.
    public var isUpgraded: Bool {
        if case .upgraded = state { return true }
        return false
    }

    /// The next event from `buffer` (consuming what it read), or `nil` once every byte of it is
    /// taken and more are needed.
    public mutating func read(_ buffer: inout ByteBuffer) throws(Failure) -> Event? {
        do {
            return try step(&buffer)
        } catch {
            state = .failed
            partialHead = nil
            trailerBytes = nil
            throw error
        }
    }

    /// The upstream closed its connection: the end of a response framed by the close, `nil`
    /// when no response was being read, a ``Failure`` when one was cut short.
    public mutating func closed() throws(Failure) -> Event? {
        var empty = ByteBuffer()
        switch state {
        case .untilClose:
            state = .idle
            return .end(trailers: nil)
        case .ending:
            return try step(&empty)
        case .idle, .upgraded, .failed:
            return nil
        default:
            state = .failed
            throw Failure("the upstream closed the connection before the response ended")
        }
    }

    /// Bytes that followed a `101` in the read that carried it (they belong to the upgraded protocol).
    public func leftover(from buffer: inout ByteBuffer) -> ByteBuffer? {
        guard isUpgraded, buffer.readableBytes > 0 else { return nil }
        defer { buffer.moveReaderIndex(to: buffer.writerIndex) }
        return buffer.readSlice(length: buffer.readableBytes)
    }

    private mutating func step(_ buffer: inout ByteBuffer) throws(Failure) -> Event? {
        switch state {
        case .ending:
            state = upgradeAtEnd ? .upgraded : .idle
            upgradeAtEnd = false
            if let trailers = trailerBytes {
                trailerBytes = nil
                if mode == .payload { return .end(trailers: try Self.trailerFields(trailers)) }
            }
            return .end(trailers: nil)
        case .idle:
            guard buffer.readableBytes == 0 else { throw Failure("bytes from the upstream with no request waiting") }
            return nil
        case .failed:
            throw Failure("the response could not be read")
        case .upgraded:
            return nil
        case .head:
            return try readHead(&buffer)
        case .length(let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let count = min(remaining, buffer.readableBytes)
            let body = buffer.readSlice(length: count)!
            state = count == remaining ? .ending : .length(remaining: remaining - count)
            return .body(body, payload: count)
        case .untilClose:
            guard buffer.readableBytes > 0 else { return nil }
            let count = buffer.readableBytes
            return .body(buffer.readSlice(length: count)!, payload: count)
        case .chunkSize, .chunkSizeLF, .chunkData, .chunkDataCR, .chunkDataLF, .trailers, .trailerLF:
            return try readChunked(&buffer)
        }
    }

    // MARK: Heads

    private mutating func readHead(_ buffer: inout ByteBuffer) throws(Failure) -> Event? {
        while true {
            guard buffer.readableBytes > 0 || partialHead != nil else { return nil }
            let head: ByteBuffer
            if var partial = partialHead {
                // Search from the last three bytes already held: the end may straddle reads.
                let searchFrom = max(0, partial.readableBytes - 3)
                partial.writeImmutableBuffer(buffer)
                buffer.moveReaderIndex(to: buffer.writerIndex)
                guard let end = Self.headEnd(in: partial, from: searchFrom) else {
                    guard partial.readableBytes <= maxHeadBytes else { throw Failure("the response head is longer than \(maxHeadBytes) bytes") }
                    partialHead = partial
                    return nil
                }
                guard end <= maxHeadBytes else { throw Failure("the response head is longer than \(maxHeadBytes) bytes") }
                head = partial.readSlice(length: end)!
                // What followed the head goes back in front of the unread bytes.
                buffer = partial
                partialHead = nil
            } else {
                guard let end = Self.headEnd(in: buffer, from: 0) else {
                    guard buffer.readableBytes <= maxHeadBytes else { throw Failure("the response head is longer than \(maxHeadBytes) bytes") }
                    partialHead = buffer.readSlice(length: buffer.readableBytes)
                    return nil
                }
                guard end <= maxHeadBytes else { throw Failure("the response head is longer than \(maxHeadBytes) bytes") }
                head = buffer.readSlice(length: end)!
            }
            let parsed = try Self.parseHead(head, toHEAD: requestWasHEAD, upgradeRequested: requestAsksUpgrade)
            if (100...199).contains(parsed.status), parsed.status != 101 {
                continue  // informational: dropped; the final response follows
            }
            // A 101 ends with its head; after its end the bytes are the other protocol's.
            upgradeAtEnd = parsed.status == 101
            switch parsed.framing {
            case .none: state = .ending
            case .length(let length): state = length == 0 ? .ending : .length(remaining: length)
            case .chunked: state = .chunkSize(ChunkLine())
            case .untilClose: state = .untilClose
            }
            return .head(parsed)
        }
    }

    /// The offset just past the CRLF CRLF that ends a head, searching from `from`.
    static func headEnd(in buffer: ByteBuffer, from: Int) -> Int? {
        buffer.withUnsafeReadableBytes { raw -> Int? in
            var index = from
            let count = raw.count
            while index + 3 < count {
                if raw[index + 3] != 0x0A {
                    index += 1
                    continue
                }
                if raw[index] == 0x0D, raw[index + 1] == 0x0A, raw[index + 2] == 0x0D { return index + 4 }
                index += 1
            }
            return nil
        }
    }

    /// Parses a complete head (its bytes end with the empty line).
    public static func parseHead(_ bytes: ByteBuffer, toHEAD: Bool, upgradeRequested: Bool) throws(Failure) -> Head {
        var version = HTTPVersion.http1_1
        var status = 0
        var statusLineLength = 0
        var fields: [(name: Range<Int>, value: Range<Int>)] = []
        fields.reserveCapacity(12)
        var contentLength: Int?
        var chunked = false
        var transferEncoding = false
        var close = false
        var keepAliveToken = false
        let problem: String? = bytes.withUnsafeReadableBytes { raw -> String? in
            let count = raw.count
            // Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF
            guard count >= 14, raw[0] == 0x48, raw[1] == 0x54, raw[2] == 0x54, raw[3] == 0x50, raw[4] == 0x2F, raw[5] == 0x31,
                raw[6] == 0x2E, raw[7] == 0x30 || raw[7] == 0x31, raw[8] == 0x20
            else { return "the status line is not HTTP/1.0 or HTTP/1.1" }
            version = raw[7] == 0x31 ? .http1_1 : .http1_0
            var code = 0
            for index in 9..<12 {
                let byte = raw[index]
                guard byte >= 0x30, byte <= 0x39 else { return "the status code is not three digits" }
                code = code * 10 + Int(byte - 0x30)
            }
            guard code >= 100 else { return "the status code is below 100" }
            status = code
            var index = 12
            if raw[index] == 0x20 {
                index += 1
                while index < count, raw[index] != 0x0D {
                    let byte = raw[index]
                    guard byte == 0x09 || byte >= 0x20, byte != 0x7F else { return "a control character in the reason phrase" }
                    index += 1
                }
            }
            guard index + 1 < count, raw[index] == 0x0D, raw[index + 1] == 0x0A else { return "the status line does not end in CRLF" }
            index += 2
            statusLineLength = index
            // Field lines until the empty line.
            while true {
                guard index + 1 < count else { return "the head ends inside a field line" }
                if raw[index] == 0x0D {
                    guard raw[index + 1] == 0x0A, index + 2 == count else { return "a stray CR in the head" }
                    break
                }
                let nameStart = index
                while index < count, isTokenByte(raw[index]) { index += 1 }
                guard index < count, raw[index] == 0x3A else {
                    let folded = index == nameStart && index < count && (raw[index] == 0x20 || raw[index] == 0x09)
                    return folded ? "a folded field line" : "a field name that is not a token"
                }
                guard index > nameStart else { return "an empty field name" }
                let name = nameStart..<index
                index += 1
                while index < count, raw[index] == 0x20 || raw[index] == 0x09 { index += 1 }
                let valueStart = index
                var valueEnd = index
                while index < count, raw[index] != 0x0D {
                    let byte = raw[index]
                    guard byte == 0x09 || byte >= 0x20, byte != 0x7F else { return "a control character in a field value" }
                    index += 1
                    if byte != 0x20 && byte != 0x09 { valueEnd = index }
                }
                guard index + 1 < count, raw[index + 1] == 0x0A else { return "a field line does not end in CRLF" }
                index += 2
                let value = valueStart..<valueEnd
                fields.append((name, value))
                switch name.count {
                case 10 where matches(raw, name, "connection"):
                    forEachElement(raw, value) { element in
                        if matches(raw, element, "close") { close = true }
                        if matches(raw, element, "keep-alive") { keepAliveToken = true }
                    }
                case 14 where matches(raw, name, "content-length"):
                    guard !value.isEmpty, value.count <= 18 else { return "Content-Length is not a number" }
                    var length = 0
                    for offset in value {
                        let byte = raw[offset]
                        guard byte >= 0x30, byte <= 0x39 else { return "Content-Length is not a number" }
                        length = length * 10 + Int(byte - 0x30)
                    }
                    if let contentLength, contentLength != length { return "Content-Length given twice with different values" }
                    contentLength = length
                case 17 where matches(raw, name, "transfer-encoding"):
                    var problem: String?
                    forEachElement(raw, value) { element in
                        if chunked || !matches(raw, element, "chunked") { problem = "Transfer-Encoding other than chunked" }
                        chunked = true
                    }
                    if let problem { return problem }
                    transferEncoding = true
                default:
                    break
                }
            }
            return nil
        }
        if let problem { throw Failure(problem) }
        if transferEncoding {
            guard chunked else { throw Failure("Transfer-Encoding other than chunked") }
            guard contentLength == nil else { throw Failure("both Content-Length and Transfer-Encoding") }
        }
        let framing: Framing
        if status == 101 {
            guard upgradeRequested, version == .http1_1 else { throw Failure("a 101 to a request that did not ask to upgrade") }
            framing = .none
        } else if toHEAD || status < 200 || status == 204 || status == 304 {
            framing = .none
        } else if chunked {
            framing = .chunked
        } else if let contentLength {
            framing = .length(contentLength)
        } else {
            framing = .untilClose
        }
        let keepAlive = framing != .untilClose && (version == .http1_1 ? !close : keepAliveToken && !close)
        return Head(
            bytes: bytes, version: version, status: status, fields: fields, framing: framing, keepAlive: keepAlive,
            statusLineLength: statusLineLength)
    }

    /// RFC 9110's `tchar`.
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    /// Whether the bytes at `range` are `lowercase` (which must be in lowercase) in any case.
    package static func matches(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: String) -> Bool {
        guard range.count == lowercase.utf8.count else { return false }
        var offset = range.lowerBound
        for expected in lowercase.utf8 {
            guard ASCII.lowercased(raw[offset]) == expected else { return false }
            offset += 1
        }
        return true
    }

    /// The comma-separated elements of a list value, trimmed, empty ones skipped.
    package static func forEachElement(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var start = range.lowerBound
        while start < range.upperBound {
            var end = start
            while end < range.upperBound, raw[end] != 0x2C { end += 1 }
            var low = start
            var high = end
            while low < high, raw[low] == 0x20 || raw[low] == 0x09 { low += 1 }
            while high > low, raw[high - 1] == 0x20 || raw[high - 1] == 0x09 { high -= 1 }
            if low < high { body(low..<high) }
            start = end + 1
        }
    }

    // MARK: Chunks

    private mutating func readChunked(_ buffer: inout ByteBuffer) throws(Failure) -> Event? {
        let unread = buffer
        let start = buffer.readerIndex
        var payload = 0
        while buffer.readableBytes > 0 {
            switch state {
            case .chunkData(let remaining):
                let count = min(remaining, buffer.readableBytes)
                state = count == remaining ? .chunkDataCR : .chunkData(remaining: remaining - count)
                if mode == .payload {
                    return .body(buffer.readSlice(length: count)!, payload: count)
                }
                buffer.moveReaderIndex(forwardBy: count)
                payload += count
            case .chunkSize(var line):
                let byte = buffer.readInteger(as: UInt8.self)!
                line.length += 1
                guard line.length <= Self.maxChunkLineBytes else { throw Failure("a chunk-size line is too long") }
                if byte == 0x0D {
                    guard line.digits > 0 else { throw Failure("a chunk without a size") }
                    state = .chunkSizeLF(size: line.size)
                } else if line.inExtension {
                    guard byte == 0x09 || byte >= 0x20, byte != 0x7F else { throw Failure("a control character in a chunk extension") }
                    state = .chunkSize(line)
                } else if let digit = ASCII.hexValue(byte), !line.afterSize {
                    guard line.digits < 15 else { throw Failure("a chunk size is too large") }
                    line.size = line.size << 4 | Int(digit)
                    line.digits += 1
                    state = .chunkSize(line)
                } else if byte == 0x20 || byte == 0x09, line.digits > 0 {
                    line.afterSize = true
                    state = .chunkSize(line)
                } else if byte == 0x3B, line.digits > 0 {
                    line.inExtension = true
                    state = .chunkSize(line)
                } else {
                    throw Failure("a chunk size is not hexadecimal")
                }
            case .chunkSizeLF(let size):
                guard buffer.readInteger(as: UInt8.self)! == 0x0A else { throw Failure("a chunk-size line does not end in CRLF") }
                if size == 0 {
                    state = .trailers(lineLength: 0)
                    trailerBytes = ByteBuffer()
                } else {
                    state = .chunkData(remaining: size)
                }
            case .chunkDataCR:
                guard buffer.readInteger(as: UInt8.self)! == 0x0D else { throw Failure("a chunk's data does not end in CRLF") }
                state = .chunkDataLF
            case .chunkDataLF:
                guard buffer.readInteger(as: UInt8.self)! == 0x0A else { throw Failure("a chunk's data does not end in CRLF") }
                state = .chunkSize(ChunkLine())
            case .trailers(let lineLength):
                let byte = buffer.readInteger(as: UInt8.self)!
                guard (trailerBytes?.readableBytes ?? 0) < Self.maxTrailerBytes else { throw Failure("the trailer section is too long") }
                trailerBytes?.writeInteger(byte)
                if byte == 0x0D {
                    state = .trailerLF(lineLength: lineLength)
                } else {
                    guard byte != 0x0A else { throw Failure("a trailer line does not end in CRLF") }
                    state = .trailers(lineLength: lineLength + 1)
                }
            case .trailerLF(let lineLength):
                let byte = buffer.readInteger(as: UInt8.self)!
                guard byte == 0x0A else { throw Failure("a trailer line does not end in CRLF") }
                trailerBytes?.writeInteger(byte)
                if lineLength == 0 {
                    state = .ending
                    if trailerBytes?.readableBytes == 2 { trailerBytes = nil }
                    // Checked now: a bad trailer section fails the response before its end is given.
                    if let trailers = trailerBytes { _ = try Self.trailerFields(trailers) }
                    if mode == .raw { return .body(unread.getSlice(at: start, length: buffer.readerIndex - start)!, payload: payload) }
                    return try step(&buffer)
                }
                state = .trailers(lineLength: 0)
            default:
                return nil
            }
        }
        // Every byte taken: in `raw` mode they go on as they are (framing included).
        guard mode == .raw, buffer.readerIndex > start else { return nil }
        return .body(unread.getSlice(at: start, length: buffer.readerIndex - start)!, payload: payload)
    }

    /// The trailer section's fields (its bytes end with the empty line), checked as a head's are.
    static func trailerFields(_ bytes: ByteBuffer) throws(Failure) -> HTTPHeaders {
        var head = ByteBuffer(string: "HTTP/1.1 200 OK\r\n")
        head.writeImmutableBuffer(bytes)
        let parsed = try parseHead(head, toHEAD: false, upgradeRequested: false)
        for index in parsed.fields.indices {
            if parsed.nameIs(index, "content-length") || parsed.nameIs(index, "transfer-encoding") {
                throw Failure("a framing field in the trailer section")
            }
        }
        return parsed.headers
    }
}
