import NIOCore
import NIOHTTP1
import Testing

@testable import KubeAPIAuthHTTP

/// The connection rules both doors share, as a value: no channel, no clock.
@Suite("One HTTP/1 server connection (HTTPServerConnection): pipelining, held reads, early answers, parse errors, quiescing")
struct HTTPServerConnectionTests {
    /// The value behind a reference, so that `#expect` can call its mutating methods.
    final class Probe {
        var value: HTTPServerConnection
        init(readDeadline: HTTPServerConnection.ReadDeadline, pipelineLimit: Int) {
            value = HTTPServerConnection(readDeadline: readDeadline, pipelineLimit: pipelineLimit)
        }
        var isReceiving: Bool { value.isReceiving }
        var isClosing: Bool { value.isClosing }
        var quiescing: Bool { value.quiescing }
        func received(_ part: HTTPServerRequestPart) -> HTTPServerConnection.Inbound { value.received(part) }
        func nextHeld() -> (HTTPServerRequestPart, HTTPServerConnection.Milestone?)? { value.nextHeld() }
        func answerFinished(keepAlive: Bool) -> HTTPServerConnection.AfterAnswer { value.answerFinished(keepAlive: keepAlive) }
        func readRequested(doorPaused: Bool) -> Bool { value.readRequested(doorPaused: doorPaused) }
        func takeHeldRead(doorPaused: Bool) -> Bool { value.takeHeldRead(doorPaused: doorPaused) }
        func parseError(doorCanAnswer: Bool) -> HTTPServerConnection.OnParseError { value.parseError(doorCanAnswer: doorCanAnswer) }
        func quiesce() -> HTTPServerConnection.OnQuiesce { value.quiesce() }
    }

    static let head = HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/x"))
    static let body = HTTPServerRequestPart.body(ByteBuffer(string: "b"))
    static let end = HTTPServerRequestPart.end(nil)

    @Test("A request's parts go to the door as they arrive; the next request's are held until the answer, then handed over in order")
    func pipelining() {
        let connection = Probe(readDeadline: .wholeRequest, pipelineLimit: 0)
        #expect(connection.received(Self.head) == .deliver(Self.head, .headReceived))
        #expect(connection.received(Self.body) == .deliver(Self.body, nil))
        #expect(connection.received(Self.end) == .deliver(Self.end, .requestReceived))
        // A second and a third request, pipelined behind the unanswered first.
        for part in [Self.head, Self.end, Self.head] { #expect(connection.received(part) == .held) }
        #expect(connection.nextHeld() == nil, "nothing is handed over before the answer")
        #expect(connection.answerFinished(keepAlive: true) == .proceed)
        #expect(connection.nextHeld()! == (Self.head, .headReceived))
        #expect(connection.nextHeld()! == (Self.end, .requestReceived))
        #expect(connection.nextHeld() == nil, "the third waits for the second's answer")
        #expect(connection.received(Self.body) == .held, "a part arriving now goes behind the held ones")
        #expect(connection.answerFinished(keepAlive: true) == .proceed)
        #expect(connection.nextHeld()! == (Self.head, .headReceived))
        #expect(connection.nextHeld()! == (Self.body, nil))
        #expect(connection.nextHeld() == nil)
        #expect(connection.received(Self.end) == .deliver(Self.end, .requestReceived))
    }

    @Test("With the head-only read deadline, the timeouts stop reading deadlines at the head")
    func headOnlyDeadline() {
        let connection = Probe(readDeadline: .head, pipelineLimit: 9)
        #expect(connection.received(Self.head) == .deliver(Self.head, .headReceivedNoReadDeadline))
        #expect(connection.received(Self.end) == .deliver(Self.end, nil))
    }

    @Test(
        "Reading pauses while an answer is pending and the pipeline limit is held, or when the door says so; the held read passes once neither holds",
        arguments: [0, 3])
    func heldReads(limit: Int) {
        let connection = Probe(readDeadline: .head, pipelineLimit: limit)
        #expect(connection.readRequested(doorPaused: false))
        #expect(!connection.readRequested(doorPaused: true), "the door's own reason holds the read")
        #expect(!connection.takeHeldRead(doorPaused: true))
        #expect(connection.takeHeldRead(doorPaused: false))
        #expect(!connection.takeHeldRead(doorPaused: false), "a read is passed on once")
        _ = connection.received(Self.head)
        _ = connection.received(Self.end)
        // The unanswered request counts as one; `limit` more parts may be read and held.
        for _ in 0..<limit {
            #expect(connection.readRequested(doorPaused: false))
            #expect(connection.received(Self.body) == .held)
        }
        #expect(!connection.readRequested(doorPaused: false), "reading goes on past the pipeline limit")
        #expect(!connection.takeHeldRead(doorPaused: false))
        #expect(connection.answerFinished(keepAlive: true) == .proceed)
        while connection.nextHeld() != nil {}
        #expect(connection.takeHeldRead(doorPaused: false), "the held read is not passed on after the answer")
    }

    @Test("An answer before the whole request closes the connection (the rest would be taken for the next request); so does keep-alive off")
    func earlyAnswerCloses() {
        let connection = Probe(readDeadline: .head, pipelineLimit: 9)
        _ = connection.received(Self.head)
        #expect(connection.isReceiving)
        #expect(connection.answerFinished(keepAlive: true) == .close)
        #expect(connection.isClosing)
        #expect(connection.received(Self.body) == .dropped)

        let closing = Probe(readDeadline: .head, pipelineLimit: 9)
        _ = closing.received(Self.head)
        _ = closing.received(Self.end)
        _ = closing.received(Self.head)
        #expect(closing.answerFinished(keepAlive: false) == .close)
        #expect(closing.nextHeld() == nil, "held parts of a closing connection are dropped")
    }

    @Test(
        "A request the decoder rejects: 400 when nothing is pending and the door can answer, else the connection just closes",
        arguments: [
            (parts: [HTTPServerRequestPart](), doorCanAnswer: true, expected: HTTPServerConnection.OnParseError.answerBadRequest),
            (parts: [HTTPServerConnectionTests.head], doorCanAnswer: true, expected: .answerBadRequest),
            (parts: [HTTPServerConnectionTests.head], doorCanAnswer: false, expected: .close),
            (parts: [HTTPServerConnectionTests.head, HTTPServerConnectionTests.end], doorCanAnswer: true, expected: .close),
        ])
    func parseError(parts: [HTTPServerRequestPart], doorCanAnswer: Bool, expected: HTTPServerConnection.OnParseError) {
        let connection = Probe(readDeadline: .wholeRequest, pipelineLimit: 0)
        for part in parts { _ = connection.received(part) }
        #expect(connection.parseError(doorCanAnswer: doorCanAnswer) == expected)
        #expect(connection.isClosing)
    }

    @Test("Quiescing: an idle connection closes at once; a busy one finishes its answer, which then closes it")
    func quiescing() {
        let idle = Probe(readDeadline: .wholeRequest, pipelineLimit: 0)
        #expect(idle.quiesce() == .closeNow)

        let busy = Probe(readDeadline: .wholeRequest, pipelineLimit: 0)
        _ = busy.received(Self.head)
        _ = busy.received(Self.end)
        #expect(busy.quiesce() == .closeAfterAnswer)
        #expect(busy.quiescing)
        #expect(busy.answerFinished(keepAlive: true) == .close, "a keep-alive answer still closes once quiescing")
    }
}
