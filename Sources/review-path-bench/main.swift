// Times the parts of one review — and of one proxied request — in-process, one core, no sockets: a
// program that prints figures (bench/run and bench/proxy measure the whole service over loopback).
//   swift run -c release review-path-bench RECORDS_DIR TOKENS_FILE [iterations]
// RECORDS_DIR and TOKENS_FILE as bench/generate-records.py writes them.
import Crypto
import Foundation
import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import KubeClient
import Logging
import NIOCore
import NIOEmbedded
import RancherAuth

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    FileHandle.standardError.write(Data("usage: review-path-bench RECORDS_DIR TOKENS_FILE [iterations]\n".utf8))
    exit(2)
}
let iterations = arguments.count > 3 ? Int(arguments[3]) ?? 200_000 : 200_000
let load = try RecordsDirectory(path: arguments[1], namespace: "cattle-system").load()
let snapshot = load.snapshot()
let tokens = try String(contentsOfFile: arguments[2], encoding: .utf8).split(separator: "\n").prefix(1000).map(String.init)
let bodies = tokens.map { token in
    Array(
        #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","metadata":{},"spec":{"token":"\#(token)","audiences":["https://kubernetes.default.svc"]},"status":{"user":{}}}"#
            .utf8)
}
let now = Timestamp(seconds: Int64(Date().timeIntervalSince1970))
var logger = Logger(label: "bench")
logger.logLevel = .critical

/// Runs `body` `iterations` times over the 1,000 tokens and prints nanoseconds per call.
func measure(_ name: String, _ body: (Int) -> Int) {
    var sink = 0
    for index in 0..<min(iterations, 10_000) { sink &+= body(index % tokens.count) }  // warm-up
    let start = ContinuousClock.now
    for index in 0..<iterations { sink &+= body(index % tokens.count) }
    let elapsed = start.duration(to: .now)
    let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
    let padded = name.padding(toLength: 52, withPad: " ", startingAt: 0)
    print(padded + String(format: "%8.0f ns", nanoseconds / Double(iterations)) + (sink == 42 ? " " : ""))
}

let authenticator = Authenticator()
measure("decode TokenReview") { index in
    bodies[index].withUnsafeBytes { (try? TokenReviewDecoder.decode($0))?.token.utf8.count ?? 0 }
}
measure("Authenticator.begin") { index in
    if case .verify = authenticator.begin(token: tokens[index], snapshot: snapshot, now: now) { return 1 }
    return 0
}
let pendings = tokens.map { token -> PendingVerification in
    guard case .verify(let pending) = authenticator.begin(token: token, snapshot: snapshot, now: now) else {
        fatalError("token \(token.prefix(20)) refused")
    }
    return pending
}
measure("hash check (\(pendings[0].hash.algorithm.rawValue))") { index in pendings[index].run().isAuthenticated ? 1 : 0 }
measure("verified-cache key (SHA-256 of the token)") { index in
    VerifiedTokenCache.key(for: tokens[index]).withUnsafeBytes { Int($0[0]) }
}

let store = RecordStore(source: "bench")
store.publish(snapshot, problemCount: 0, at: now)
let group = EmbeddedEventLoop()
let reviews = WebhookDoor(
    core: AuthenticationCore(
        store: store, clock: SystemClock(), workers: ExpensiveHashWorkers(threads: 1, maxQueued: 1),
        effects: ReadOnlySourceEffects(), audit: AuditLog(logger: logger, enabled: false), logger: logger))
measure("WebhookDoor.tokenReview (all of the above)") { index in
    bodies[index].withUnsafeBytes { bytes in
        if case .now(let answer) = reviews.tokenReview(body: bytes) { return answer.body.count }
        return 0
    }
}

let channel = EmbeddedChannel()
try channel.pipeline.syncOperations.addServiceHTTPHandlers(
    endpoints: Endpoints(webhook: reviews, store: store), maxBodyBytes: 1 << 20, maxHeaderBytes: 8192,
    headerTimeout: .seconds(10), requestReadTimeout: .seconds(30), idleTimeout: .seconds(120))
try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
let requests = bodies.map { body in
    var buffer = ByteBufferAllocator().buffer(capacity: body.count + 200)
    buffer.writeString(
        "POST /v1/authenticate?timeout=30s HTTP/1.1\r\nHost: 127.0.0.1:6440\r\nUser-Agent: kube-apiserver\r\nContent-Type: application/json\r\nAccept: application/json, */*\r\nContent-Length: \(body.count)\r\n\r\n"
    )
    buffer.writeBytes(body)
    return buffer
}
measure("HTTP request in, response out (EmbeddedChannel)") { index in
    try! channel.writeInbound(requests[index])
    return (try! channel.readOutbound(as: ByteBuffer.self))?.readableBytes ?? 0
}
let healthcheck = ByteBuffer(
    string: "GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1:6440\r\nUser-Agent: kube-apiserver\r\nAccept: application/json, */*\r\n\r\n")
measure("HTTP GET /healthcheck in, response out (no review)") { _ in
    try! channel.writeInbound(healthcheck)
    return (try! channel.readOutbound(as: ByteBuffer.self))?.readableBytes ?? 0
}

// The proxy's open exchanges re-decided at one record publication: 10,000 sessions (the tokens
// above, ten exchanges each), lookups only. The issue's goal: well under 50 ms.
let exchanges = OpenExchanges(store: store, clock: SystemClock(), metrics: ServiceMetrics(), logger: logger, auditEnabled: false)
for index in 0..<10_000 {
    guard let session = pendings[index % pendings.count].decide(secretMatches: true).session else { fatalError("no session") }
    _ = exchanges.register(session, on: group) { _, _ in }
}
let recheckRounds = max(1, min(100, iterations / 2_000))
let recheckStart = ContinuousClock.now
var endedSessions = 0
for _ in 0..<recheckRounds { endedSessions += exchanges.recheckAll(snapshot) }
let recheckElapsed = recheckStart.duration(to: .now) / recheckRounds
guard endedSessions == 0, exchanges.count == 10_000 else { fatalError("sessions ended by an unchanged snapshot") }
let recheckMilliseconds = Double(recheckElapsed.components.seconds) * 1e3 + Double(recheckElapsed.components.attoseconds) / 1e15
print(
    "re-check 10,000 open exchanges (one publication)".padding(toLength: 52, withPad: " ", startingAt: 0)
        + String(format: "%8.2f ms", recheckMilliseconds))

// What an exchange pays to be followed: one registration and its removal (every request the
// proxy forwards under an identity of ours), with 10,000 others open.
let followed = pendings[0].decide(secretMatches: true).session!
measure("register + unregister one open exchange") { _ in
    let registration = exchanges.register(followed, on: group) { _, _ in }
    exchanges.unregister(registration)
    return 1
}

// One proxied GET on embedded channels (client and upstream on one loop, no TLS, no sockets): the
// request decoded, authenticated (remembered verification), its headers rewritten and encoded
// upstream, the response decoded and encoded back. The proxy's own cost per request, without the
// kernel's and TLS's share that bench/proxy also counts.
let upstreamConfiguration = KubeConfig(server: "https://127.0.0.1:6443", credentials: .token("proxy-token"))
let upstreamTarget = try UpstreamTarget(
    configuration: upstreamConfiguration, client: try KubeClient(configuration: upstreamConfiguration, logger: logger), origin: "bench")
let upstreamChannel = EmbeddedChannel(loop: group)
// One upstream connection, made when the first request needs it and reused (kept alive) after.
let pool = UpstreamPool(target: upstreamTarget, group: group) { pool, loop in
    loop.makeCompletedFuture {
        try pool.addHTTPHandlers(to: upstreamChannel)
        try upstreamChannel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6443)).wait()
        return upstreamChannel as any Channel
    }
}
let proxyDoor = ProxyDoor(
    core: AuthenticationCore(
        store: store, clock: SystemClock(), workers: ExpensiveHashWorkers(threads: 1, maxQueued: 1), effects: ReadOnlySourceEffects(),
        audit: AuditLog(logger: logger, enabled: false), logger: logger),
    upstream: upstreamTarget, passThrough: false, logger: logger, auditEnabled: false)
let proxyClient = EmbeddedChannel(loop: group)
try proxyClient.connect(to: SocketAddress(ipAddress: "192.0.2.1", port: 40000)).wait()
let proxyTimeouts = ConnectionTimeoutHandler(headerTimeout: .seconds(10), requestReadTimeout: .seconds(30), idleTimeout: .seconds(120))
try proxyClient.pipeline.syncOperations.addHandler(proxyTimeouts)
try ProxyPipeline.configureHTTP1(
    proxyClient, server: ServerConfiguration(), door: proxyDoor, pool: pool, logger: logger, timeouts: proxyTimeouts)
let proxyRequests = tokens.map { token in
    ByteBuffer(
        string:
            "GET /api/v1/namespaces/default/configmaps/bench HTTP/1.1\r\nHost: 127.0.0.1:6443\r\nUser-Agent: kubectl/v1.36.0\r\nAccept: application/json, */*\r\nAuthorization: Bearer \(token)\r\n\r\n"
    )
}
let answerBody = #"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"bench","namespace":"default","resourceVersion":"1"},"data":{"a":"b"}}"#
let upstreamAnswer = ByteBuffer(
    string:
        "HTTP/1.1 200 OK\r\nAudit-Id: 0b2d6f0e-5f1b-4c1e-9d55-6a1c8b7e2f10\r\nCache-Control: no-cache, private\r\nContent-Type: application/json\r\nContent-Length: \(answerBody.utf8.count)\r\n\r\n\(answerBody)"
)
measure("proxied GET, in and out (EmbeddedChannel, no TLS)") { index in
    try! proxyClient.writeInbound(proxyRequests[index])
    group.run()
    var forwarded = 0
    while let part = try! upstreamChannel.readOutbound(as: ByteBuffer.self) { forwarded += part.readableBytes }
    try! upstreamChannel.writeInbound(upstreamAnswer)
    group.run()
    var answered = 0
    while let part = try! proxyClient.readOutbound(as: ByteBuffer.self) { answered += part.readableBytes }
    guard forwarded > 0, answered > answerBody.utf8.count else {
        fatalError("the proxied GET was not forwarded and answered (\(forwarded) bytes upstream, \(answered) back)")
    }
    return answered
}
