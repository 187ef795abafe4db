import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A TLS connection that sends exactly the bytes a test gives it (hostile requests, an upgrade
/// handshake, a splice) and reads what comes back, with every wait bounded.
final class TLSRawClient: @unchecked Sendable {
    private let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    /// Bytes read but not yet handed out.
    private var pending: [UInt8] = []
    private(set) var closed = false

    /// Connects to `127.0.0.1:port` trusting `caPEM`, offering `alpn` (HTTP/1.1 by default).
    init(port: Int, caPEM: String, alpn: [String] = ["http/1.1"]) async throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        tls.applicationProtocols = alpn
        let context = try NIOSSLContext(configuration: tls)
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        iterator = channel.inbound.makeAsyncIterator()
        outbound = channel.outbound
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
        let deadline = ContinuousClock.now + timeout
        while !closed, ContinuousClock.now < deadline { try await readMore(until: deadline) }
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    private func readMore(until deadline: ContinuousClock.Instant) async throws {
        let channel = self.channel.channel
        // A read that outlives the deadline closes the connection, which ends the iterator.
        let timer = channel.eventLoop.scheduleTask(deadline: .now() + TimeAmount(max(.zero, deadline - .now))) {
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            if var buffer = try await iterator.next() {
                pending += buffer.readBytes(length: buffer.readableBytes) ?? []
            } else {
                closed = true
            }
        } catch {
            closed = true
        }
    }

    func close() async {
        outbound.finish()
        try? await channel.channel.close()
    }

    deinit {
        outbound.finish()
        channel.channel.close(promise: nil)
    }
}
