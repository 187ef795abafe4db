import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import KubeAPIAuthHTTP
@testable import KubeAPIAuthProxy

/// The splice after an upgrade, on two embedded channels sharing one loop, in virtual time: the
/// pipelines the proxy builds (timeouts, HTTP codecs, the exchange's handler) turned into relays.
@Suite("The splice after an upgrade (RawRelay)")
struct RawRelayTests {
    /// Counts the `read` events that reach the channel (it sits next to the head).
    final class ReadCounter: ChannelOutboundHandler, RemovableChannelHandler {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    /// Stands for the exchange's handler (ProxyStreamHandler, UpstreamHandler) the splice replaces.
    final class ExchangeHandler: ChannelDuplexHandler, RemovableChannelHandler {
        typealias InboundIn = Any
        typealias OutboundIn = Any
    }

    struct Splice {
        let loop: EmbeddedEventLoop
        let client: EmbeddedChannel
        let upstream: EmbeddedChannel
        let clientReads: ReadCounter
        let upstreamReads: ReadCounter
    }

    /// Both connections as the proxy has them at a `101`, then spliced. The client's timeouts are
    /// 5 s each and nothing told them a request is in progress: left in place, they would close
    /// the connection within 5 s.
    static func splice() throws -> Splice {
        let loop = EmbeddedEventLoop()
        let client = EmbeddedChannel(loop: loop)
        let upstream = EmbeddedChannel(loop: loop)
        let clientReads = ReadCounter()
        let upstreamReads = ReadCounter()
        let timeouts = ConnectionTimeoutHandler(headerTimeout: .seconds(5), requestReadTimeout: .seconds(5), idleTimeout: .seconds(5))
        let encoder = HTTPResponseEncoder()
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
        let clientExchange = ExchangeHandler()
        let upstreamExchange = ExchangeHandler()
        try client.pipeline.syncOperations.addHandlers([clientReads, timeouts, encoder, decoder, clientExchange])
        try upstream.pipeline.syncOperations.addHandlers([
            upstreamReads, HTTPRequestEncoder(),
            upstreamExchange,
        ])
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        try RawRelay.splice(
            client: client.pipeline.syncOperations.context(handler: clientExchange),
            http1: .init(encoder: encoder, decoder: decoder, timeouts: timeouts),
            upstream: upstream.pipeline.syncOperations.context(handler: upstreamExchange))
        loop.run()
        return Splice(loop: loop, client: client, upstream: upstream, clientReads: clientReads, upstreamReads: upstreamReads)
    }

    static func text(_ buffer: ByteBuffer?) -> String? {
        buffer.map { String(buffer: $0) }
    }

    @Test("Only the relays are left, bytes flow both ways, and ten virtual minutes of traffic outlast every timeout")
    func bytesFlowPastTheTimeouts() throws {
        let splice = try Self.splice()
        #expect(throws: (any Error).self) { try splice.client.pipeline.syncOperations.handler(type: ConnectionTimeoutHandler.self) }
        #expect(throws: (any Error).self) { try splice.client.pipeline.syncOperations.handler(type: HTTPResponseEncoder.self) }
        #expect(throws: (any Error).self) { try splice.upstream.pipeline.syncOperations.handler(type: HTTPRequestEncoder.self) }
        for minute in 0..<10 {
            try splice.client.writeInbound(ByteBuffer(string: "stdin \(minute)"))
            #expect(Self.text(try splice.upstream.readOutbound(as: ByteBuffer.self)) == "stdin \(minute)")
            try splice.upstream.writeInbound(ByteBuffer(string: "stdout \(minute)"))
            #expect(Self.text(try splice.client.readOutbound(as: ByteBuffer.self)) == "stdout \(minute)")
            splice.loop.advanceTime(by: .minutes(1))
            #expect(splice.client.isActive && splice.upstream.isActive, "closed after \(minute + 1) virtual minutes")
        }
    }

    @Test("Backpressure both ways: a side whose partner cannot write holds its read, and reads again once the partner can")
    func backpressure() throws {
        let splice = try Self.splice()
        for (reader, readerReads, writer) in [
            (splice.client, splice.clientReads, splice.upstream), (splice.upstream, splice.upstreamReads, splice.client),
        ] {
            let before = readerReads.reads
            reader.read()
            #expect(readerReads.reads == before + 1, "a read passes while the partner can write")
            writer.isWritable = false
            writer.pipeline.fireChannelWritabilityChanged()
            reader.read()
            #expect(readerReads.reads == before + 1, "a read passed although the partner cannot write")
            writer.isWritable = true
            writer.pipeline.fireChannelWritabilityChanged()
            #expect(readerReads.reads == before + 2, "the held read was not passed on once the partner could write")
        }
    }

    /// Next to the head: a read it is given delivers bytes at once and asks to read again, as a
    /// decoder holding buffered bytes does under autoRead.
    final class EagerReader: ChannelOutboundHandler, RemovableChannelHandler {
        typealias OutboundIn = Any
        var deliveries = 0
        func read(context: ChannelHandlerContext) {
            guard deliveries < 3 else { return context.read() }
            deliveries += 1
            context.fireChannelRead(NIOAny(ByteBuffer(string: "buffered \(deliveries)")))
            context.fireChannelReadComplete()
            context.channel.read()
        }
    }

    @Test("A held read passed on that delivers bytes at once and asks to read again re-enters the relay safely")
    func reentrantRead() throws {
        let splice = try Self.splice()
        let eager = EagerReader()
        try splice.client.pipeline.syncOperations.addHandler(eager, position: .first)
        splice.upstream.isWritable = false
        splice.upstream.pipeline.fireChannelWritabilityChanged()
        splice.client.read()
        #expect(eager.deliveries == 0, "the read was not held")
        // Passing the held read on re-enters the relay (its read) while it is releasing that read.
        splice.upstream.isWritable = true
        splice.upstream.pipeline.fireChannelWritabilityChanged()
        #expect(eager.deliveries == 3)
        var forwarded: [String] = []
        while let buffer = try splice.upstream.readOutbound(as: ByteBuffer.self) { forwarded.append(String(buffer: buffer)) }
        #expect(forwarded == ["buffered 1", "buffered 2", "buffered 3"])
    }

    @Test("Either side closing closes the other")
    func closes() throws {
        let splice = try Self.splice()
        try splice.client.close().wait()
        splice.loop.run()
        #expect(!splice.upstream.isActive)
        let other = try Self.splice()
        try other.upstream.close().wait()
        other.loop.run()
        #expect(!other.client.isActive)
    }
}
