import Foundation
import ServiceLifecycle
import Synchronization

/// Log lines on their way to a descriptor (standard error), written by a thread of their own so
/// that no review waits for a log write: an event loop only appends a line to a bounded queue.
/// When the queue is full (the reader of the log has stopped reading), lines are dropped and
/// counted (``droppedLines``, exported as `log_lines_dropped_total`), never waited for.
///
/// The writer thread runs while ``LogDrain``, a `Service` of the group, runs; before it starts and
/// after it stops (start-up problems, the final line of a failed run) lines are written directly.
public final class LogQueue: Sendable {
    /// Standard error, where the service logs.
    public static let standardError = LogQueue(writer: .standardError)

    private struct State {
        var lines: [String] = []
        var dropped = 0
        /// The writer thread is running: lines are queued, not written by the caller.
        var active = false
        var stopping = false
    }

    let writer: DescriptorWriter
    public let capacity: Int
    private let state = Mutex(State())
    /// Signalled when lines arrive for the writer thread, or when it should stop.
    private let pending = DispatchSemaphore(value: 0)
    /// Signalled by the writer thread when it has written everything and ended.
    private let finished = DispatchSemaphore(value: 0)
    /// Keeps direct writes (no writer thread) from interleaving.
    private let directWrites = Mutex(())

    public init(writer: DescriptorWriter, capacity: Int = 10_000) {
        self.writer = writer
        self.capacity = capacity
    }

    /// Queues `line` (or writes it now when no writer thread runs); never blocks on the descriptor.
    public func write(_ line: String) {
        enum Action { case queued(wake: Bool), dropped, direct }
        let action: Action = state.withLock { state in
            guard state.active else { return .direct }
            guard state.lines.count < capacity else {
                state.dropped += 1
                return .dropped
            }
            state.lines.append(line)
            return .queued(wake: state.lines.count == 1)
        }
        switch action {
        case .queued(let wake): if wake { pending.signal() }
        case .dropped: break
        case .direct: directWrites.withLock { _ in _ = writer.write(line) }
        }
    }

    /// Lines dropped because the queue was full.
    public var droppedLines: Int { state.withLock { $0.dropped } }

    /// Starts the writer thread (once).
    func start() {
        let started = state.withLock { state in
            guard !state.active else { return false }
            state.active = true
            state.stopping = false
            return true
        }
        guard started else { return }
        Thread.detachNewThread { [self] in
            while true {
                pending.wait()
                let (lines, stop) = state.withLock { state in
                    defer { state.lines.removeAll(keepingCapacity: true) }
                    return (state.lines, state.stopping)
                }
                if !lines.isEmpty { _ = writer.write(lines.joined()) }
                if stop { break }
            }
            finished.signal()
        }
    }

    /// Writes what is queued, stops the writer thread and goes back to direct writes. Waits at
    /// most `timeout` for the thread (a descriptor that does not drain must not hold up the exit).
    func stop(timeout: Duration = .seconds(2)) {
        let wasActive = state.withLock { state in
            guard state.active else { return false }
            state.stopping = true
            return true
        }
        guard wasActive else { return }
        pending.signal()
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        _ = finished.wait(timeout: .now() + seconds)
        // Lines queued after the thread's last look go out directly.
        let late = state.withLock { state in
            defer {
                state.lines.removeAll()
                state.active = false
            }
            return state.lines
        }
        if !late.isEmpty { directWrites.withLock { _ in _ = writer.write(late.joined()) } }
    }
}

/// Owns the ``LogQueue``'s writer thread: started first in the group and stopped last, after
/// every other part has logged its last line.
public struct LogDrain: Service {
    let queue: LogQueue

    public init(queue: LogQueue) {
        self.queue = queue
    }

    public func run() async throws {
        queue.start()
        try? await gracefulShutdown()
        queue.stop()
    }
}
