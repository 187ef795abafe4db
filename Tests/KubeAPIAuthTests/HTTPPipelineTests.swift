import Foundation
import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import RancherAuth
import Synchronization
import Testing
import TestSupport

/// The server's per-connection pipeline on an `EmbeddedChannel`: raw bytes in, raw bytes out,
/// virtual time for timeouts.
final class HTTPHarness {
    let channel = EmbeddedChannel()
    let logs = LogCapture()

    init(store: RecordStore, maxBodyBytes: Int = 4096, headerTimeout: Int64 = 10, readTimeout: Int64 = 30, idleTimeout: Int64 = 120) throws {
        let core = AuthenticationCore(
            store: store, clock: FixedClock(instant: Timestamp(seconds: 1_800_000_000)),
            workers: ExpensiveHashWorkers(threads: 1, maxQueued: 1), effects: ReadOnlySourceEffects(), logger: logs.logger())
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addServiceHTTPHandlers(
            endpoints: Endpoints(webhook: WebhookDoor(core: core), store: store), maxBodyBytes: maxBodyBytes, maxHeaderBytes: 8192,
            headerTimeout: .seconds(headerTimeout), requestReadTimeout: .seconds(readTimeout), idleTimeout: .seconds(idleTimeout))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    func send(_ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    /// Everything the server wrote so far.
    func output() throws -> String {
        var text = ""
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        return text
    }

    func post(_ path: String, _ body: String, headers: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }
}

func loadedStore() throws -> RecordStore {
    let directory = try TemporaryDirectory()
    try directory.write("fixture.yaml", fixtureManifest)
    let store = RecordStore(source: "test")
    let load = try RecordsDirectory(path: directory.path, namespace: "cattle-system").load()
    store.publish(load.snapshot(), problemCount: 0, at: Timestamp(seconds: 1_800_000_000))
    return store
}

let reviewBody = #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"\#(validToken)"}}"#

@Suite("HTTP pipeline")
struct HTTPPipelineTests {
    @Test("A valid review over keep-alive, twice, with kube-apiserver's query string")
    func validReview() throws {
        let harness = try HTTPHarness(store: try loadedStore())
        try harness.send(harness.post("/v1/authenticate?timeout=30s", reviewBody) + harness.post("/v1/authenticate", reviewBody))
        let output = try harness.output()
        let expected =
            #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,"user":{"username":"u-abc12","groups":["github_org://456","github_team://123"]}}}"#
        #expect(output.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        #expect(output.components(separatedBy: expected).count == 3)
        #expect(output.contains("content-type: application/json"))
        #expect(!output.lowercased().contains("retry-after"))
        #expect(harness.channel.isActive)
    }

    @Test("Refusals are 200 with authenticated:false and a reason")
    func refusal() throws {
        let harness = try HTTPHarness(store: try loadedStore())
        try harness.send(harness.post("/v1/authenticate", #"{"kind":"TokenReview","spec":{"token":"kubeconfig-u-abc12x7k2q:wrong"}}"#))
        let output = try harness.output()
        #expect(output.hasPrefix("HTTP/1.1 200 OK"))
        #expect(
            output.hasSuffix(
                #"{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","status":{"authenticated":false,"error":"token secret does not match"}}"#
            ))
    }

    @Test("Before records are loaded: 503 without Retry-After, and /readyz fails")
    func notLoaded() throws {
        let harness = try HTTPHarness(store: RecordStore(source: "test"))
        try harness.send(harness.post("/v1/authenticate", reviewBody))
        let review = try harness.output()
        #expect(review.hasPrefix("HTTP/1.1 503 Service Unavailable"))
        #expect(!review.lowercased().contains("retry-after"))
        try harness.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try harness.output().hasPrefix("HTTP/1.1 503"))
        try harness.send("GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try harness.output().hasPrefix("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"))
    }

    @Test("Malformed review: 400 with a Status body")
    func malformed() throws {
        let harness = try HTTPHarness(store: try loadedStore())
        try harness.send(harness.post("/v1/authenticate", "not json"))
        let output = try harness.output()
        #expect(output.hasPrefix("HTTP/1.1 400 Bad Request"))
        #expect(output.contains(#""kind":"Status""#))
        #expect(output.contains(#""code":400}"#))
    }

    @Test(
        "Routing: 404, 405 with Allow, 301 for trailing slash and unclean paths",
        arguments: [
            ("GET /nope HTTP/1.1", "HTTP/1.1 404 Not Found", "404 page not found\n"),
            ("GET /v1/authenticate HTTP/1.1", "HTTP/1.1 405 Method Not Allowed", "Allow: POST"),
            ("HEAD /healthcheck HTTP/1.1", "HTTP/1.1 405 Method Not Allowed", "Allow: GET"),
            ("GET /healthcheck/ HTTP/1.1", "HTTP/1.1 301 Moved Permanently", "Location: /healthcheck\r\n"),
            ("GET //healthcheck?x=1 HTTP/1.1", "HTTP/1.1 301 Moved Permanently", "Location: /healthcheck?x=1\r\n"),
            ("POST /v1/./authenticate HTTP/1.1", "HTTP/1.1 301 Moved Permanently", "Location: /v1/authenticate\r\n"),
            ("GET /livez HTTP/1.1", "HTTP/1.1 200 OK", "ok\n"),
            ("GET /readyz HTTP/1.1", "HTTP/1.1 200 OK", "generation 1"),
        ])
    func routing(requestLine: String, status: String, contains: String) throws {
        let harness = try HTTPHarness(store: try loadedStore())
        try harness.send("\(requestLine)\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        let output = try harness.output()
        #expect(output.hasPrefix(status))
        #expect(output.contains(contains))
    }

    @Test("Bodies over the cap get 413 and the connection closes")
    func bodyCap() throws {
        let harness = try HTTPHarness(store: try loadedStore(), maxBodyBytes: 1024)
        try harness.send(harness.post("/v1/authenticate", String(repeating: " ", count: 2000) + reviewBody))
        let output = try harness.output()
        #expect(output.hasPrefix("HTTP/1.1 413 Payload Too Large"))
        #expect(output.contains("connection: close"))
        #expect(!harness.channel.isActive)
    }

    @Test("Chunked bodies over the cap get 413 too")
    func chunkedBodyCap() throws {
        let harness = try HTTPHarness(store: try loadedStore(), maxBodyBytes: 1024)
        let chunk = String(repeating: "x", count: 800)
        try harness.send(
            "POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n\(chunk)\r\n320\r\n\(chunk)\r\n0\r\n\r\n")
        #expect(try harness.output().hasPrefix("HTTP/1.1 413"))
    }

    @Test("A request the HTTP decoder rejects gets 400 and the connection closes")
    func malformedHTTP() throws {
        let harness = try HTTPHarness(store: try loadedStore())
        try? harness.send("POST /v1/authenticate HTTP/1.1\r\nContent-Length: x\r\n\r\n")
        #expect(try harness.output() == "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        #expect(!harness.channel.isActive)
    }

    @Test("HEAD gets headers without a body; HTTP/1.0 keep-alive is confirmed, plain HTTP/1.0 closes")
    func headAndHTTP10() throws {
        let harness = try HTTPHarness(store: try loadedStore())
        try harness.send("HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try harness.output() == "HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nAllow: GET\r\n\r\n")
        // A 404 has a body for GET; for HEAD only its length is sent.
        try harness.send("HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try harness.output() == "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 19\r\n\r\n")
        try harness.send("GET /livez HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(
            try harness.output().hasPrefix(
                "HTTP/1.0 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 3\r\nconnection: keep-alive\r\n\r\nok\n"))
        try harness.send("GET /livez HTTP/1.0\r\n\r\n")
        #expect(try harness.output().contains("connection: close\r\n\r\nok\n"))
        #expect(!harness.channel.isActive)
    }

    @Test("On shutdown an idle connection closes at once; a busy one after its answer, marked close")
    func quiescing() throws {
        let idle = try HTTPHarness(store: try loadedStore())
        try idle.send(idle.post("/v1/authenticate", reviewBody))
        #expect(try idle.output().hasPrefix("HTTP/1.1 200 OK"))
        idle.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!idle.channel.isActive)

        let busy = try HTTPHarness(store: try loadedStore())
        let request = busy.post("/v1/authenticate", reviewBody)
        try busy.send(String(request.dropLast(10)))
        busy.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(busy.channel.isActive)
        try busy.send(String(request.suffix(10)))
        let output = try busy.output()
        #expect(output.hasPrefix("HTTP/1.1 200 OK"))
        #expect(output.contains("connection: close"))
        #expect(!busy.channel.isActive)
    }

    @Test("Expect: 100-continue is answered before the body")
    func expectContinue() throws {
        let harness = try HTTPHarness(store: try loadedStore())
        try harness.send("POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: \(reviewBody.utf8.count)\r\n\r\n")
        #expect(try harness.output() == "HTTP/1.1 100 Continue\r\n\r\n")
        try harness.send(reviewBody)
        #expect(try harness.output().hasPrefix("HTTP/1.1 200 OK"))
    }

    @Test("SelfSubjectReview with a bearer token; 401 Status without or with a bad one")
    func selfSubjectReview() throws {
        let harness = try HTTPHarness(store: try loadedStore())
        let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
        try harness.send(harness.post(path, "{}", headers: "Authorization: Bearer \(validToken)\r\n"))
        let allowed = try harness.output()
        #expect(allowed.hasPrefix("HTTP/1.1 201 Created"))
        #expect(allowed.contains(#""userInfo":{"username":"u-abc12","groups":["github_org://456","github_team://123","system:authenticated"]}"#))
        try harness.send(harness.post(path, "{}", headers: "Authorization: bearer kubeconfig-u-abc12x7k2q:nope\r\n"))
        #expect(try harness.output().hasPrefix("HTTP/1.1 401 Unauthorized"))
        try harness.send(harness.post(path, "{}"))
        let missing = try harness.output()
        #expect(missing.hasPrefix("HTTP/1.1 401 Unauthorized"))
        #expect(missing.contains(#""reason":"Unauthorized","code":401}"#))
    }

    @Test("Decision log lines carry the token name and reason but never the secret")
    func logsHaveNoSecrets() throws {
        let harness = try HTTPHarness(store: try loadedStore())
        try harness.send(harness.post("/v1/authenticate", reviewBody))
        try harness.send(harness.post("/v1/authenticate", #"{"kind":"TokenReview","spec":{"token":"kubeconfig-u-abc12x7k2q:other-secret"}}"#))
        _ = try harness.output()
        let logs = harness.logs.text
        #expect(logs.contains("token=kubeconfig-u-abc12x7k2q"))
        #expect(logs.contains("reason=secret_mismatch"))
        #expect(!logs.contains("test-secret-key"))
        #expect(!logs.contains("other-secret"))
    }
}

@Suite("Connection timeouts")
struct ConnectionTimeoutTests {
    @Test("A connection that never sends a request head is closed after the header timeout")
    func headerTimeout() throws {
        let harness = try HTTPHarness(store: try loadedStore(), headerTimeout: 10)
        try harness.send("POST /v1/authenticate HTTP/1.1\r\nHost: x\r\n")
        harness.channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(harness.channel.isActive)
        harness.channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!harness.channel.isActive)
    }

    @Test("A body trickled slower than the read timeout is cut off")
    func readTimeout() throws {
        let harness = try HTTPHarness(store: try loadedStore(), headerTimeout: 10, readTimeout: 30)
        try harness.send("POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        for _ in 0..<5 {
            harness.channel.embeddedEventLoop.advanceTime(by: .seconds(5))
            try harness.send(" ")
        }
        #expect(harness.channel.isActive)
        harness.channel.embeddedEventLoop.advanceTime(by: .seconds(6))
        #expect(!harness.channel.isActive)
    }

    @Test("Keep-alive connections close after the idle timeout, not before")
    func idleTimeout() throws {
        let harness = try HTTPHarness(store: try loadedStore(), headerTimeout: 10, idleTimeout: 120)
        try harness.send(harness.post("/v1/authenticate", reviewBody))
        #expect(try harness.output().hasPrefix("HTTP/1.1 200"))
        harness.channel.embeddedEventLoop.advanceTime(by: .seconds(100))
        #expect(harness.channel.isActive)
        try harness.send(harness.post("/v1/authenticate", reviewBody))
        #expect(try harness.output().hasPrefix("HTTP/1.1 200"))
        harness.channel.embeddedEventLoop.advanceTime(by: .seconds(119))
        #expect(harness.channel.isActive)
        harness.channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!harness.channel.isActive)
    }
}

@Suite("HTTP/2 connection deadlines (virtual time)")
struct HTTP2ConnectionDeadlineTests {
    /// Records the user events that reach it (where NIO's HTTP/2 connection manager sits).
    final class EventRecorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var quiesceEvents = 0
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is ChannelShouldQuiesceEvent { quiesceEvents += 1 }
            context.fireUserInboundEventTriggered(event)
        }
    }

    final class FirstHeads: Sendable {
        let count = Mutex(0)
    }

    static func connection() throws -> (EmbeddedChannel, ConnectionTimeoutHandler, EventRecorder, FirstHeads) {
        let firstHeads = FirstHeads()
        let timeouts = ConnectionTimeoutHandler(
            headerTimeout: .seconds(10), requestReadTimeout: .seconds(30), idleTimeout: .seconds(120),
            onFirstHead: { firstHeads.count.withLock { $0 += 1 } })
        let recorder = EventRecorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(timeouts)
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        timeouts.http2Started()
        return (channel, timeouts, recorder, firstHeads)
    }

    @Test("No stream within the header timeout: asked to wind down (GOAWAY), closed a header timeout later")
    func noStream() throws {
        let (channel, _, recorder, firstHeads) = try Self.connection()
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        #expect(channel.isActive && recorder.quiesceEvents == 0)
        // Frames that open no stream (SETTINGS, PING) do not count as activity.
        try channel.writeInbound(ByteBuffer(string: "frames"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(channel.isActive && recorder.quiesceEvents == 1)
        channel.embeddedEventLoop.advanceTime(by: .seconds(8))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive && recorder.quiesceEvents == 1)
        #expect(firstHeads.count.withLock { $0 } == 0, "a connection that opened no stream stays replaceable under the connection cap")
    }

    @Test("An open stream has no deadline; the idle timeout runs once the last one closes")
    func streams() throws {
        let (channel, timeouts, recorder, firstHeads) = try Self.connection()
        timeouts.http2StreamOpened()
        timeouts.http2StreamOpened()
        #expect(firstHeads.count.withLock { $0 } == 1)
        channel.embeddedEventLoop.advanceTime(by: .hours(3))
        timeouts.http2StreamClosed()
        channel.embeddedEventLoop.advanceTime(by: .hours(1))
        #expect(channel.isActive && recorder.quiesceEvents == 0, "a watch outlives every timeout")
        timeouts.http2StreamClosed()
        channel.embeddedEventLoop.advanceTime(by: .seconds(119))
        #expect(channel.isActive && recorder.quiesceEvents == 0)
        // A stream opened before the deadline resets it.
        timeouts.http2StreamOpened()
        timeouts.http2StreamClosed()
        channel.embeddedEventLoop.advanceTime(by: .seconds(119))
        #expect(channel.isActive && recorder.quiesceEvents == 0)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(channel.isActive && recorder.quiesceEvents == 1)
        // A stream the client opened before it saw the GOAWAY: no deadline while it lasts; then
        // the rest of the wind-down time, not a new idle timeout.
        timeouts.http2StreamOpened()
        channel.embeddedEventLoop.advanceTime(by: .minutes(10))
        #expect(channel.isActive)
        timeouts.http2StreamClosed()
        channel.embeddedEventLoop.advanceTime(by: .seconds(11))
        #expect(!channel.isActive && recorder.quiesceEvents == 1)
    }
}

@Suite("Small parts")
struct SmallPartsTests {
    @Test(
        "Listen addresses",
        arguments: [
            ("127.0.0.1:6440", "127.0.0.1", 6440), ("[::1]:6440", "::1", 6440), ("localhost:0", "localhost", 0), (":6440", "::", 6440),
        ])
    func listenAddress(text: String, host: String, port: Int) throws {
        let address = try ListenAddress(parsing: text)
        #expect(address.host == host && address.port == port)
    }

    @Test("Bad listen addresses are explained", arguments: ["6440", "127.0.0.1", "::1:6440", "[::1]6440", "host:99999", "host:x"])
    func badListenAddress(text: String) {
        #expect(throws: ListenAddress.ParseError.self) { try ListenAddress(parsing: text) }
    }

    @Test("logfmt quoting")
    func logfmt() {
        let capture = LogCapture()
        capture.logger().info("records loaded", metadata: ["a": "plain", "b": "two words", "c": "q\"uote\nnl"])
        let line = capture.text
        #expect(line.hasPrefix("time="))
        #expect(line.hasSuffix(#" level=info msg="records loaded" a=plain b="two words" c="q\"uote\nnl""# + "\n"))
    }
}

@Suite("HTTP pipeline with a pending scrypt answer")
struct PipelinedScryptTests {
    @Test("Requests pipelined behind a scrypt review are answered after it, in order")
    func pipelinedBehindScrypt() async throws {
        // Spec vector Q-style scrypt hash of "test-secret-key" (N=2^15, r=8, p=1) beside the SHA3 fixture.
        let scryptHash = "$1:0001020304050607:15:8:1:X6GLi3D7VUKdL6s/6hl89ogxnrcJ2wTz3L2VqaVRJipJZel+uiaF+dUKsXyk+2IHQ3xD6NqMgaWhEXBFkB2B2Q"
        let fixture = try loadedStore().snapshot!
        let scryptToken = ClusterAuthToken(
            metadata: ObjectMeta(name: "kubeconfig-u-scrypt", resourceVersion: "1"), userName: "u-scrypt", enabled: true)
        let scryptUser = ClusterUserAttribute(metadata: ObjectMeta(name: "u-scrypt", resourceVersion: "1"), groups: [], enabled: true)
        let snapshot = RecordSnapshot(
            tokens: Array(fixture.tokens.values) + [scryptToken], users: fixture.users.values.map(\.attribute) + [scryptUser],
            hashSecrets: Array(fixture.hashSecrets.values) + [
                HashSecret(metadata: ObjectMeta(name: "kubeconfig-u-scrypt", resourceVersion: "1"), hash: scryptHash)
            ])
        let store = RecordStore(source: "test")
        store.publish(snapshot, problemCount: 0, at: Timestamp(seconds: 1_800_000_000))
        let workers = ExpensiveHashWorkers(threads: 1, maxQueued: 4)
        let core = AuthenticationCore(
            store: store, clock: FixedClock(instant: Timestamp(seconds: 1_800_000_000)),
            workers: workers, effects: ReadOnlySourceEffects(), logger: LogCapture().logger())
        // NIOAsyncTestingChannel: the scrypt answer completes from the worker thread, which an
        // EmbeddedChannel's loop must not be touched from.
        let channel = NIOAsyncTestingChannel()
        try await channel.testingEventLoop.executeInContext {
            try channel.pipeline.syncOperations.addServiceHTTPHandlers(
                endpoints: Endpoints(webhook: WebhookDoor(core: core), store: store), maxBodyBytes: 4096, maxHeaderBytes: 8192,
                headerTimeout: .seconds(10), requestReadTimeout: .seconds(30), idleTimeout: .seconds(120))
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
        func post(_ token: String) -> String {
            let body = #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"\#(token)"}}"#
            return "POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        }
        try await channel.writeInbound(
            ByteBuffer(string: post("kubeconfig-u-scrypt:test-secret-key") + post(validToken) + "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"))
        // Bounded by writes, not only by answers: the count below is then a finding, not a given.
        var output = ""
        for _ in 0..<32 where output.components(separatedBy: "HTTP/1.1 200 OK").count - 1 < 3 {
            var buffer = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
            output += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        let answers = output.components(separatedBy: "HTTP/1.1 200 OK").dropFirst()
        #expect(answers.count == 3)
        // In request order: nothing overtook the scrypt answer (the SHA3 one was ready ~100 ms earlier).
        #expect(answers.first?.contains(#""username":"u-scrypt""#) == true)
        #expect(answers.dropFirst().first?.contains(#""username":"u-abc12""#) == true)
        #expect(answers.last?.hasSuffix("ok\n") == true)
        let exposition = String(decoding: core.metrics.render(), as: UTF8.self)
        #expect(exposition.contains(#"kube_api_auth_hash_verify_duration_seconds_count{algorithm="scrypt"} 1"#))
        _ = try await channel.finish(acceptAlreadyClosed: true)
        try await workers.shutdown()
    }
}
