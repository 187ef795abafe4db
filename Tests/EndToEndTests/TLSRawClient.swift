import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A TLS connection that sends exactly the bytes a test gives it (hostile requests, an upgrade
/// handshake, a splice) and reads what comes back, with every wait bounded. It lives within
/// `withConnection`, which closes it when the body returns or throws.
final class TLSRawClient {
    private let channel: any Channel
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    /// Bytes read but not yet handed out.
    private var pending: [UInt8] = []
    private(set) var closed = false
    /// Whether the connection ended before a read's deadline (the peer closed it, or it failed),
    /// not because a read timed out.
    private(set) var endedBeforeDeadline = false

    private init(
        channel: any Channel, inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) {
        self.channel = channel
        iterator = inbound.makeAsyncIterator()
        self.outbound = outbound
    }

    /// Connects to `127.0.0.1:port` trusting `caPEM`, offering `alpn` (HTTP/1.1 by default), and
    /// runs `body` with the connection.
    static func withConnection<Result: Sendable>(
        port: Int, caPEM: String, alpn: [String] = ["http/1.1"], _ body: (TLSRawClient) async throws -> Result
    ) async throws -> Result {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        tls.applicationProtocols = alpn
        let context = try NIOSSLContext(configuration: tls)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await body(TLSRawClient(channel: channel.channel, inbound: inbound, outbound: outbound))
        }
    }

    func send(_ bytes: [UInt8]) async throws {
        try await outbound.write(ByteBuffer(bytes: bytes))
    }

    func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    /// Reads until `terminator` arrives, the connection ends, or `timeout` passes; returns what
    /// was read up to and including the terminator (the rest stays for the next read).
    func read(until terminator: [UInt8], timeout: Duration = .seconds(20)) async throws -> [UInt8] {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let range = pending.firstRange(of: terminator) {
                let result = Array(pending[..<range.upperBound])
                pending.removeFirst(range.upperBound)
                return result
            }
            guard !closed, ContinuousClock.now < deadline else {
                defer { pending.removeAll() }
                return pending
            }
            try await readMore(until: deadline)
        }
    }

    func read(until terminator: String, timeout: Duration = .seconds(20)) async throws -> String {
        String(decoding: try await read(until: Array(terminator.utf8), timeout: timeout), as: UTF8.self)
    }

    /// Reads `count` bytes (fewer when the connection ends or the timeout passes).
    func read(count: Int, timeout: Duration = .seconds(20)) async throws -> [UInt8] {
        let deadline = ContinuousClock.now + timeout
        while pending.count < count, !closed, ContinuousClock.now < deadline {
            try await readMore(until: deadline)
        }
        let result = Array(pending.prefix(count))
        pending.removeFirst(result.count)
        return result
    }

    /// Everything until the peer closes (or the timeout passes).
    func readToEnd(timeout: Duration = .seconds(20)) async throws -> String {
        String(decoding: try await readBytesToEnd(timeout: timeout), as: UTF8.self)
    }

    func readBytesToEnd(timeout: Duration = .seconds(20)) async throws -> [UInt8] {
        let deadline = ContinuousClock.now + timeout
        while !closed, ContinuousClock.now < deadline { try await readMore(until: deadline) }
        defer { pending.removeAll() }
        return pending
    }

    private func readMore(until deadline: ContinuousClock.Instant) async throws {
        let channel = self.channel
        // A read that outlives the deadline closes the connection, which ends the iterator.
        let timer = channel.eventLoop.scheduleTask(deadline: .now() + TimeAmount(max(.zero, deadline - .now))) {
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            if var buffer = try await iterator.next() {
                pending += buffer.readBytes(length: buffer.readableBytes) ?? []
            } else {
                ended(before: deadline)
            }
        } catch {
            ended(before: deadline)
        }
    }

    private func ended(before deadline: ContinuousClock.Instant) {
        closed = true
        endedBeforeDeadline = ContinuousClock.now < deadline
    }

    /// Closes the connection before `withConnection`'s body ends.
    func close() async {
        outbound.finish()
        try? await channel.close()
    }
}

/// Just enough HTTP/2 framing (RFC 9113) and HPACK (RFC 7541, literals only) to open a stream by
/// hand and read back which frames the server sent.
enum RawHTTP2 {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let headersType: UInt8 = 0x1
    static let settingsType: UInt8 = 0x4
    static let goAwayType: UInt8 = 0x7
    static let windowUpdateType: UInt8 = 0x8

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let length = UInt32(payload.count)
        return [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags]
            + [UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)] + payload
    }

    /// A header field as a literal without indexing, with a new name and no Huffman coding.
    static func literal(_ name: String, _ value: String) -> [UInt8] {
        [0x00] + string(name) + string(value)
    }

    private static func string(_ text: String) -> [UInt8] {
        integer(UInt(text.utf8.count), prefixBits: 7) + Array(text.utf8)
    }

    private static func integer(_ value: UInt, prefixBits: Int) -> [UInt8] {
        let limit = UInt(1) << prefixBits - 1
        guard value >= limit else { return [UInt8(value)] }
        var bytes = [UInt8(limit)]
        var rest = value - limit
        while rest >= 128 {
            bytes.append(UInt8(rest % 128 + 128))
            rest /= 128
        }
        return bytes + [UInt8(rest)]
    }

    /// The frames in `bytes` (the server's side of a connection from its start), as (type, stream).
    static func frames(_ bytes: [UInt8]) -> [(type: UInt8, stream: UInt32, payload: ArraySlice<UInt8>)] {
        var frames: [(type: UInt8, stream: UInt32, payload: ArraySlice<UInt8>)] = []
        var index = 0
        while index + 9 <= bytes.count {
            let length = Int(bytes[index]) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            let stream =
                UInt32(bytes[index + 5] & 0x7f) << 24 | UInt32(bytes[index + 6]) << 16 | UInt32(bytes[index + 7]) << 8 | UInt32(bytes[index + 8])
            frames.append((bytes[index + 3], stream, bytes[min(index + 9, bytes.count)..<min(index + 9 + length, bytes.count)]))
            index += 9 + length
        }
        return frames
    }

    /// The error codes of the GOAWAY frames among `frames` (RFC 9113 §6.8: 0 is NO_ERROR, 1 PROTOCOL_ERROR).
    static func goAwayErrors(_ frames: [(type: UInt8, stream: UInt32, payload: ArraySlice<UInt8>)]) -> [UInt32] {
        frames.filter { $0.type == goAwayType && $0.payload.count >= 8 }.map { frame in
            frame.payload.dropFirst(4).prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }
    }
}
