import Foundation
import KubeClient
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import RancherAuth
import Testing

@testable import KubeAPIAuthCore
@testable import KubeAPIAuthHTTP
@testable import KubeAPIAuthProxy

/// One client connection of the proxy and its upstream connections, as bytes on embedded channels
/// sharing one loop (virtual time): what the process-level suites show, pinned at unit level.
final class ProxyHarness {
    let loop = EmbeddedEventLoop()
    let client: EmbeddedChannel
    let logs = LogCapture()
    /// The upstream connections the proxy opened (embedded, so touched on the one test thread).
    final class Connections: @unchecked Sendable {
        var channels: [EmbeddedChannel] = []
        /// Set to make the next connection attempts fail.
        var refuse = false
    }

    let connections = Connections()
    let door: ProxyDoor

    init() throws {
        let store = try loadedStore()
        let core = AuthenticationCore(
            store: store, clock: FixedClock(instant: Timestamp(seconds: 1_800_000_000)),
            workers: ExpensiveHashWorkers(threads: 1, maxQueued: 1), effects: ReadOnlySourceEffects(), logger: logs.logger())
        let configuration = KubeConfig(server: "https://127.0.0.1:6443", credentials: .token("proxy-token"))
        let target = try UpstreamTarget(
            configuration: configuration, client: try KubeClient(configuration: configuration, logger: Logger(label: "test")), origin: "test")
        door = ProxyDoor(core: core, upstream: target, passThrough: true, logger: logs.logger(), auditEnabled: true)
        let loop = self.loop
        let connections = self.connections
        let pool = UpstreamPool(target: target, group: loop) { pool, _ in
            if connections.refuse {
                // As a real connection attempt fails: later, not while the request is being read.
                let failed = loop.makePromise(of: (any Channel).self)
                loop.execute { failed.fail(ChannelError.connectTimeout(.seconds(5))) }
                return failed.futureResult
            }
            let channel = EmbeddedChannel(loop: loop)
            do {
                try channel.pipeline.syncOperations.addHandlers([
                    HTTPRequestEncoder(),
                    UpstreamHandler(pool: pool),
                ])
                try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6443)).wait()
            } catch {
                return loop.makeFailedFuture(error)
            }
            connections.channels.append(channel)
            return loop.makeSucceededFuture(channel)
        }
        client = EmbeddedChannel(loop: loop)
        // An accepted connection: connected before its handlers are added.
        try client.connect(to: SocketAddress(ipAddress: "192.0.2.10", port: 40000)).wait()
        let timeouts = ConnectionTimeoutHandler(headerTimeout: .seconds(10), requestReadTimeout: .seconds(30), idleTimeout: .seconds(120))
        let encoder = HTTPResponseEncoder()
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
        try client.pipeline.syncOperations.addHandlers([
            timeouts, encoder, decoder,
            ProxyStreamHandler(door: door, pool: pool, http1: .init(encoder: encoder, decoder: decoder, timeouts: timeouts), logger: logs.logger()),
        ])
    }

    var upstream: EmbeddedChannel? { connections.channels.last }
    var upstreamCount: Int { connections.channels.count }

    func send(_ text: String) throws {
        try client.writeInbound(ByteBuffer(string: text))
        loop.run()
    }

    /// What the proxy wrote to the client so far.
    func clientOutput() throws -> String { try clientWrites().joined() }

    /// What the proxy wrote to the client so far, write by write.
    func clientWrites() throws -> [String] {
        var writes: [String] = []
        while let buffer = try client.readOutbound(as: ByteBuffer.self) { writes.append(String(buffer: buffer)) }
        return writes
    }

    /// Sends a GET of `path` and takes what went upstream for it (a test that reads only the answer).
    func forwardGet(_ path: String) throws {
        try send(Self.get(path))
        _ = try upstreamOutput()
    }

    /// What the proxy wrote upstream so far, on the latest connection.
    func upstreamOutput() throws -> String {
        var text = ""
        while let buffer = try upstream?.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    func respond(_ text: String) throws {
        try upstream?.writeInbound(ByteBuffer(string: text))
        loop.run()
    }

    static func get(_ path: String, token: String = validToken, extra: String = "") -> String {
        "GET \(path) HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer \(token)\r\n\(extra)\r\n"
    }
}

@Suite("The proxy's exchange (ProxyStreamHandler) on embedded channels")
struct ProxyStreamHandlerTests {
    @Test("A Rancher token's request goes upstream as its user with the proxy's credential; the answer streams back")
    func forwardsAsTheUser() throws {
        let harness = try ProxyHarness()
        try harness.send(ProxyHarness.get("/api/v1/namespaces?limit=1"))
        let request = try harness.upstreamOutput()
        #expect(request.hasPrefix("GET /api/v1/namespaces?limit=1 HTTP/1.1\r\n"), "\(request)")
        #expect(request.contains("Authorization: Bearer proxy-token\r\n") || request.contains("authorization: Bearer proxy-token\r\n"), "\(request)")
        #expect(request.lowercased().contains("impersonate-user: u-abc12\r\n"), "\(request)")
        #expect(!request.contains("test-secret-key"), "the Rancher secret went upstream")
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        let answer = try harness.clientOutput()
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n") && answer.hasSuffix("\r\n\r\n{}"), "\(answer)")
        #expect(harness.logs.text.contains("msg=proxied") && harness.logs.text.contains("source=192.0.2.10:40000"), "\(harness.logs.text)")
        #expect(harness.door.sessions.count == 0, "a finished exchange is still followed as an open session")
    }

    @Test("Pipelined requests: the second goes upstream only after the first is answered, answers in order, one reused connection")
    func pipelining() throws {
        let harness = try ProxyHarness()
        try harness.send(ProxyHarness.get("/first") + ProxyHarness.get("/second"))
        let first = try harness.upstreamOutput()
        #expect(first.hasPrefix("GET /first ") && !first.contains("/second"), "\(first)")
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        let second = try harness.upstreamOutput()
        #expect(second.hasPrefix("GET /second "), "\(second)")
        #expect(harness.upstreamCount == 1, "the idle connection was not reused")
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
        let answers = try harness.clientOutput()
        let firstAt = try #require(answers.range(of: "first"))
        let secondAt = try #require(answers.range(of: "second"))
        #expect(firstAt.lowerBound < secondAt.lowerBound, "\(answers)")
    }

    @Test(
        "Response bodies reach an HTTP/1.1 client as the upstream framed them: chunks byte for byte, a close-ended body chunked here, a HEAD's answer bodiless"
    )
    func responseFramings() throws {
        let harness = try ProxyHarness()
        // Chunks (extensions and trailers included) go on unchanged, in the pieces they came in.
        try harness.forwardGet("/watch")
        try harness.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n4;x=1\r\nab")
        try harness.respond("cd\r\n0\r\nX-Done: 1\r\n\r\n")
        let chunked = try harness.clientOutput()
        #expect(
            chunked == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=1\r\nabcd\r\n0\r\nX-Done: 1\r\n\r\n", "\(chunked.debugDescription)")
        #expect(harness.client.isActive && harness.upstream?.isActive == true, "both connections carry the next request")

        // A HEAD's answer: its length kept, no body waited for; the connection is reused.
        try harness.send("HEAD /api HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer \(validToken)\r\n\r\n")
        #expect(try harness.upstreamOutput().hasPrefix("HEAD /api "))
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n")
        #expect(try harness.clientOutput() == "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n")
        #expect(harness.upstreamCount == 1)

        // A body that ends with the upstream's connection: chunked here; the client's connection stays.
        try harness.forwardGet("/old")
        try harness.respond("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ")
        try harness.respond("world")
        _ = harness.upstream?.close()
        harness.loop.run()
        let rechunked = try harness.clientOutput()
        #expect(
            rechunked == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
            "\(rechunked.debugDescription)")
        #expect(harness.client.isActive)
        #expect(harness.logs.text.components(separatedBy: "msg=proxied").count == 4, "three exchanges, each audited once")
    }

    @Test(
        "What one upstream read brings reaches the client as one write (one TLS record) up to 16 KiB; nothing waits past the read; a larger body goes uncopied"
    )
    func writesGathered() throws {
        let harness = try ProxyHarness()
        try harness.forwardGet("/small")
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        #expect(try harness.clientWrites() == ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"])

        // The head alone in one read: written when that read is done, the body with the next.
        try harness.forwardGet("/split")
        try harness.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(try harness.clientWrites() == ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"])
        try harness.respond("3\r\nabc\r\n")
        #expect(try harness.clientWrites() == ["3\r\nabc\r\n"])
        try harness.respond("0\r\n\r\n")
        #expect(try harness.clientWrites() == ["0\r\n\r\n"])

        // A body past the limit: the head goes first, the body as the buffer it came in.
        let large = String(repeating: "x", count: ProxyStreamHandler.gatherLimit + 1)
        try harness.forwardGet("/large")
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: \(large.utf8.count)\r\n\r\n" + large)
        #expect(try harness.clientWrites() == ["HTTP/1.1 200 OK\r\nContent-Length: \(large.utf8.count)\r\n\r\n", large])

        // Chunked here: each chunk's size line, data and CRLF in one write.
        try harness.forwardGet("/old")
        try harness.respond("HTTP/1.0 200 OK\r\n\r\nhello")
        try harness.respond("world")
        #expect(try harness.clientWrites() == ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n", "5\r\nworld\r\n"])
        _ = harness.upstream?.close()
        harness.loop.run()
        #expect(try harness.clientWrites() == ["0\r\n\r\n"])
        #expect(harness.client.isActive)
    }

    @Test(
        "A response that could be read two ways: the client gets a 502 before any of it, or is cut after its head; the upstream connection is never reused"
    )
    func ambiguousResponse() throws {
        let harness = try ProxyHarness()
        try harness.send(ProxyHarness.get("/one"))
        try harness.respond("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        let answer = try harness.clientOutput()
        #expect(answer.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(answer)")
        #expect(harness.upstream?.isActive == false, "the connection was kept")
        try harness.send(ProxyHarness.get("/two"))
        #expect(harness.upstreamCount == 2, "a new connection for the next request")
        try harness.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZ\r\n")
        #expect(!harness.client.isActive, "the client's connection stays after a cut response")
        #expect(harness.upstream?.isActive == false)
    }

    @Test("The upstream cannot be reached: the client gets a 502 Status, and the connection stays usable")
    func upstreamFailsBeforeTheHead() throws {
        let harness = try ProxyHarness()
        harness.connections.refuse = true
        try harness.send(ProxyHarness.get("/unreachable"))
        let answer = try harness.clientOutput()
        #expect(answer.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(answer)")
        #expect(answer.contains(#""kind":"Status""#) && answer.contains("cannot be reached"), "\(answer)")
        #expect(harness.client.isActive)
        harness.connections.refuse = false
        try harness.send(ProxyHarness.get("/again"))
        #expect(try harness.upstreamOutput().hasPrefix("GET /again "))
    }

    @Test("The upstream closes in the middle of a response: the client's connection is closed too (the response is cut, never completed)")
    func upstreamFailsAfterTheHead() throws {
        let harness = try ProxyHarness()
        try harness.forwardGet("/watch")
        try harness.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nevent\r\n")
        let streamed = try harness.clientOutput()
        #expect(streamed.contains("event"), "\(streamed)")
        _ = harness.upstream?.close()
        harness.loop.run()
        #expect(!harness.client.isActive)
        #expect(harness.logs.text.contains("upstream closed during a response"))
    }

    @Test("The client goes away mid-stream: the upstream connection is closed, not returned to the pool")
    func clientGoneMidStream() throws {
        let harness = try ProxyHarness()
        try harness.send(ProxyHarness.get("/watch"))
        try harness.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nevent\r\n")
        _ = harness.client.close()
        harness.loop.run()
        #expect(harness.upstream?.isActive == false)
        #expect(harness.logs.text.contains("status=200"))
    }

    @Test("A refused Rancher token is answered 401 here with a Status, and nothing goes upstream")
    func refusedNeverForwarded() throws {
        let harness = try ProxyHarness()
        try harness.send(ProxyHarness.get("/api", token: "kubeconfig-u-abc12x7k2q:wrong-secret"))
        let answer = try harness.clientOutput()
        #expect(answer.hasPrefix("HTTP/1.1 401 Unauthorized\r\n") && answer.contains(#""reason":"Unauthorized""#), "\(answer)")
        #expect(harness.upstreamCount == 0)
    }

    @Test("Backpressure: while the client cannot take more, the upstream's next read is held; it is passed on once the client can")
    func backpressureToTheUpstream() throws {
        let harness = try ProxyHarness()
        try harness.send(ProxyHarness.get("/logs"))
        try harness.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        let upstream = try #require(harness.upstream)
        let counter = RawRelayTests.ReadCounter()
        try upstream.pipeline.syncOperations.addHandler(counter, position: .first)
        harness.client.isWritable = false
        harness.client.pipeline.fireChannelWritabilityChanged()
        upstream.read()
        #expect(counter.reads == 0, "the upstream was read while the client could not write")
        harness.client.isWritable = true
        harness.client.pipeline.fireChannelWritabilityChanged()
        harness.loop.run()
        #expect(counter.reads == 1, "the held read was not passed on")
    }
}

@Suite("The proxy's connection (ProxyStreamHandler): upgrade, drain, backpressure from the client, malformed requests")
struct ProxyConnectionTests {
    @Test("An upgrade (exec): the 101 goes to the client, then bytes flow both ways untouched, and the exchange is audited once")
    func upgradeSplices() throws {
        let harness = try ProxyHarness()
        try harness.send(ProxyHarness.get("/api/v1/namespaces/x/pods/p/exec", extra: "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"))
        let request = try harness.upstreamOutput()
        #expect(request.lowercased().contains("upgrade: spdy/3.1\r\n"), "\(request)")
        try harness.respond("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
        #expect(try harness.clientOutput().hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        try harness.send("client bytes, not HTTP\r\n\r\n")
        #expect(try harness.upstreamOutput() == "client bytes, not HTTP\r\n\r\n")
        try harness.respond("upstream bytes")
        #expect(try harness.clientOutput() == "upstream bytes")
        #expect(harness.logs.text.components(separatedBy: "msg=proxied").count == 2, "\(harness.logs.text)")
        _ = harness.client.close()
        harness.loop.run()
        #expect(harness.upstream?.isActive == false, "the splice's other side stays open")
    }

    @Test("Drain: an idle connection closes at once; a busy one gets its answer marked Connection: close, then closes")
    func drain() throws {
        let idle = try ProxyHarness()
        idle.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        idle.loop.run()
        #expect(!idle.client.isActive)

        let busy = try ProxyHarness()
        try busy.send(ProxyHarness.get("/watch"))
        busy.client.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        busy.loop.run()
        #expect(busy.client.isActive, "a busy connection was cut")
        try busy.respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        let answer = try busy.clientOutput()
        #expect(answer.lowercased().contains("connection: close\r\n") && answer.hasSuffix("ok"), "\(answer)")
        #expect(!busy.client.isActive)
    }

    @Test("Backpressure from the client: while the upstream cannot take more of a body, the client's next read is held; passed on once it can")
    func backpressureToTheClient() throws {
        let harness = try ProxyHarness()
        try harness.send("POST /api/v1/namespaces HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer \(validToken)\r\nContent-Length: 10\r\n\r\nabc")
        let upstream = try #require(harness.upstream)
        #expect(try harness.upstreamOutput().hasSuffix("abc"))
        let counter = RawRelayTests.ReadCounter()
        try harness.client.pipeline.syncOperations.addHandler(counter, position: .first)
        upstream.isWritable = false
        upstream.pipeline.fireChannelWritabilityChanged()
        harness.client.read()
        #expect(counter.reads == 0, "the client was read while the upstream could not write")
        upstream.isWritable = true
        upstream.pipeline.fireChannelWritabilityChanged()
        harness.loop.run()
        #expect(counter.reads == 1, "the held read was not passed on")
    }

    @Test("A malformed request gets 400 and the connection closes; one pipelined behind an unanswered request just closes it")
    func malformed() throws {
        let alone = try ProxyHarness()
        try alone.send("GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
        #expect(try alone.clientOutput().hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        #expect(!alone.client.isActive)

        let behind = try ProxyHarness()
        try behind.send(ProxyHarness.get("/first") + "GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        #expect(try behind.clientOutput() == "", "a 400 would be taken for the first request's answer")
        #expect(!behind.client.isActive)
    }
}
