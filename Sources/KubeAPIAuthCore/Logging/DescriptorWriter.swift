#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Writes whole buffers to a file descriptor (standard error for the log) and never traps.
///
/// Why not `FileHandle.write(_:)`: it ends the process with a fatal error when the write fails
/// (`EPIPE` once a log collector or a parent process has gone away, `EINTR`, `EAGAIN` on a
/// non-blocking pipe). An authenticator must not stop answering reviews because its log cannot be
/// written; a line that cannot be written is dropped.
///
/// The log queue's own thread writes the lines (``LogQueue``; the event loops only enqueue them),
/// and a non-blocking descriptor that stops draining costs that thread one bounded wait, not one
/// per line: after a wait that ran out, lines are dropped at once until the descriptor takes a
/// write again.
public final class DescriptorWriter: Sendable {
    /// Standard error, where the service logs.
    public static let standardError = DescriptorWriter(descriptor: STDERR_FILENO)

    /// How long to wait, in total, for a full non-blocking descriptor to drain before dropping a line.
    static let blockedWaitMilliseconds: Int32 = 1_000

    public let descriptor: Int32
    /// A wait for the descriptor to drain ran out and nothing has been written since.
    private let stalled = Atomic<Bool>(false)

    public init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Writes all of `bytes`; returns whether they were all written.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        var waited: Int32 = 0
        while offset < bytes.count {
            let written = systemWrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written > 0 {
                offset += written
                stalled.store(false, ordering: .relaxed)
                continue
            }
            if written == 0 { return false }  // No progress and no error: give up rather than spin.
            switch errno {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                guard waited < Self.blockedWaitMilliseconds, !stalled.load(ordering: .relaxed) || offset > 0 else {
                    stalled.store(true, ordering: .relaxed)
                    return false
                }
                var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&ready, 1, 100)
                waited += 100
            default:
                return false  // EPIPE, EBADF, ENOSPC, EIO: the line is lost, the service goes on.
            }
        }
        return true
    }

    @discardableResult
    public func write(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }
}

/// write(2) (the class's own `write` hides the C function inside it).
private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}
