import NIOCore
import NIOHTTP1

/// What one HTTP/1.x server connection does whatever the door behind it does with a request, as a
/// value: both doors' handlers feed it the decoder's parts and their own answers' ends, and carry
/// out what it returns (NIOHTTP1's and Hummingbird's pattern: the state machine decides, the
/// handler translates). Tested without channels in `HTTPServerConnectionTests`.
///
/// The rules:
/// - **pipelining:** a request's parts go to the door as they arrive, until its end; the parts of
///   later requests are held until the door has finished answering it, then handed over in order,
///   one request at a time;
/// - **held reads:** reading pauses while an answer is pending and `pipelineLimit` parts are already
///   held, or while held parts wait to be handed over, so a client that pipelines without reading
///   costs a bounded amount of memory; a door adds its own reasons to pause (``readRequested(doorPaused:)``);
/// - **an answer before the whole request** (a `413`, an early `401`) closes the connection: the rest
///   of the request would be taken for the next one;
/// - **a request the decoder rejects** gets `400` and the connection closes, unless an answer is
///   already pending or under way (then it just closes: the byte stream is out of step);
/// - **quiescing** (shutdown): an idle connection closes at once, a busy one after its answer;
/// - **timeouts:** it names the moments ``ConnectionTimeoutHandler`` is told of (``Milestone``).
package struct HTTPServerConnection {
    /// How long a request may take to arrive under the request-read timeout.
    package enum ReadDeadline: Sendable {
        /// Until its end: the webhook's reviews are small and complete before they are answered.
        case wholeRequest
        /// Until its head: a body may then stream for as long as it takes (the proxy's uploads,
        /// exec sessions and watches).
        case head
    }

    /// A moment the connection's timeouts are told of.
    package enum Milestone: Equatable, Sendable {
        /// The head arrived: the header timeout stops; the read timeout runs until the end.
        case headReceived
        /// The head arrived and no read deadline applies to the rest (``ReadDeadline/head``).
        case headReceivedNoReadDeadline
        /// The whole request arrived: no read deadline while it is answered.
        case requestReceived
    }

    package enum Inbound: Equatable {
        /// Hand the part to the door now; tell the timeouts of `milestone`, if any.
        case deliver(HTTPServerRequestPart, Milestone?)
        /// Kept for later (a pipelined request behind an unanswered one).
        case held
        /// The connection is closing; the part is dropped.
        case dropped
    }

    package enum AfterAnswer: Equatable {
        /// Close once the answer has gone out.
        case close
        /// Keep the connection: hand over what is held (``nextHeld()``), then resume reading.
        case proceed
    }

    package enum OnParseError: Equatable {
        /// Answer `400 Bad Request` with `Connection: close`, then close.
        case answerBadRequest
        /// Close at once.
        case close
    }

    package enum OnQuiesce: Equatable {
        case closeNow
        /// Close after the answer under way (``AfterAnswer/close`` will say so).
        case closeAfterAnswer
    }

    private enum Phase: Equatable {
        /// Between requests.
        case idle
        /// A request's head arrived, not its end.
        case receiving
        /// The whole request arrived; the door has not finished answering it.
        case awaitingAnswer
        case closing
    }

    private var phase = Phase.idle
    private var held = CircularBuffer<HTTPServerRequestPart>()
    private var heldRead = HeldRead()
    /// Shutdown asked connections to finish: no answer keeps the connection open.
    package private(set) var quiescing = false
    private let readDeadline: ReadDeadline
    private let pipelineLimit: Int

    /// - Parameter pipelineLimit: how many parts of later requests are read and held behind an
    ///   unanswered request before reading pauses (0: reading pauses as soon as a request is complete).
    package init(readDeadline: ReadDeadline, pipelineLimit: Int) {
        self.readDeadline = readDeadline
        self.pipelineLimit = pipelineLimit
    }

    /// The connection is closing (after an answer with `Connection: close`, a rejected request,
    /// quiescing): nothing more is handed to the door.
    package var isClosing: Bool { phase == .closing }

    /// A request's head arrived and its end has not.
    package var isReceiving: Bool { phase == .receiving }

    /// A part from the decoder.
    package mutating func received(_ part: HTTPServerRequestPart) -> Inbound {
        switch phase {
        case .closing:
            return .dropped
        case .awaitingAnswer:
            held.append(part)
            return .held
        case .idle, .receiving:
            // Parts still held go first: order is the request stream's.
            guard held.isEmpty else {
                held.append(part)
                return .held
            }
            return .deliver(part, advance(part))
        }
    }

    /// The next held part to hand to the door, while the door can take one: call until `nil`
    /// after ``AfterAnswer/proceed`` (the door may become busy again part-way).
    package mutating func nextHeld() -> (HTTPServerRequestPart, Milestone?)? {
        guard phase == .idle || phase == .receiving, let part = held.popFirst() else { return nil }
        return (part, advance(part))
    }

    private mutating func advance(_ part: HTTPServerRequestPart) -> Milestone? {
        switch part {
        case .head:
            guard phase == .idle else { return nil }
            phase = .receiving
            return readDeadline == .head ? .headReceivedNoReadDeadline : .headReceived
        case .body:
            return nil
        case .end:
            guard phase == .receiving else { return nil }
            phase = .awaitingAnswer
            return readDeadline == .wholeRequest ? .requestReceived : nil
        }
    }

    /// The door's answer to the current request has been written in full; `keepAlive` is what it
    /// said in its headers. The timeouts are told ``ConnectionTimeoutHandler/responseSent()``
    /// unless the connection closes.
    package mutating func answerFinished(keepAlive: Bool) -> AfterAnswer {
        guard keepAlive, !quiescing, phase != .receiving, phase != .closing else {
            close()
            return .close
        }
        phase = .idle
        return .proceed
    }

    /// Whether a `read` the channel asks for may pass now; otherwise it is held until
    /// ``takeHeldRead(doorPaused:)``. `doorPaused`: the door's own reason to pause (an upstream that
    /// cannot take more of the body, a body waiting for a decision).
    package mutating func readRequested(doorPaused: Bool) -> Bool {
        heldRead.mayPass(paused: doorPaused || pipelinePaused)
    }

    /// The held `read`, if any and if nothing pauses reading any more: `true` when the caller is to
    /// pass it on now (after this method returns: the read may deliver at once).
    package mutating func takeHeldRead(doorPaused: Bool) -> Bool {
        guard !doorPaused, !pipelinePaused else { return false }
        return heldRead.takeHeld()
    }

    /// The unanswered request counts as one held part.
    private var pipelinePaused: Bool {
        held.count + (phase == .awaitingAnswer ? 1 : 0) > pipelineLimit
    }

    /// The decoder rejected the byte stream. `doorCanAnswer`: no part of an answer has been written
    /// or is coming (the door's view).
    package mutating func parseError(doorCanAnswer: Bool) -> OnParseError {
        let answer = doorCanAnswer && (phase == .idle || phase == .receiving)
        close()
        return answer ? .answerBadRequest : .close
    }

    /// Shutdown began (`ChannelShouldQuiesceEvent`).
    package mutating func quiesce() -> OnQuiesce {
        quiescing = true
        guard phase == .idle, held.isEmpty else { return .closeAfterAnswer }
        close()
        return .closeNow
    }

    /// The connection closes (for any reason): what is held is dropped.
    package mutating func close() {
        phase = .closing
        held.removeAll()
    }
}

extension ConnectionTimeoutHandler {
    /// Tells the timeouts of a moment ``HTTPServerConnection`` named.
    package func note(_ milestone: HTTPServerConnection.Milestone?) {
        switch milestone {
        case .headReceived:
            requestHeadReceived()
        case .headReceivedNoReadDeadline:
            requestHeadReceived()
            requestReceived()
        case .requestReceived:
            requestReceived()
        case nil:
            break
        }
    }
}
