#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes whole buffers to a file descriptor (standard error for the log) and never traps.
///
/// Why not `FileHandle.write(_:)`: it ends the process with a fatal error when the write fails
/// (`EPIPE` once a log collector or a parent process has gone away, `EINTR`, `EAGAIN` on a
/// non-blocking pipe). An authenticator must not stop answering reviews because its log cannot be
/// written; a line that cannot be written is dropped.
public enum DescriptorWriter {
    /// How long to wait, in total, for a full non-blocking pipe to drain before dropping the line.
    static let blockedWaitMilliseconds: Int32 = 1_000

    /// Writes all of `bytes`; returns whether they were all written.
    @discardableResult
    public static func write(_ bytes: UnsafeRawBufferPointer, to descriptor: Int32) -> Bool {
        var offset = 0
        var waited: Int32 = 0
        while offset < bytes.count {
            let written = systemWrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written > 0 {
                offset += written
                continue
            }
            if written == 0 { return false }  // No progress and no error: give up rather than spin.
            switch errno {
            case EINTR:
                continue
            case EAGAIN, EWOULDBLOCK:
                guard waited < blockedWaitMilliseconds else { return false }
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
    public static func write(_ text: String, to descriptor: Int32) -> Bool {
        var text = text
        return text.withUTF8 { write(UnsafeRawBufferPointer($0), to: descriptor) }
    }
}

/// write(2) (the enum's own `write` hides the C function inside it).
private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}
