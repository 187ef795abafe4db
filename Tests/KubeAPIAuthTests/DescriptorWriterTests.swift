import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Log writes to a descriptor")
struct DescriptorWriterTests {
    /// A pipe as (read end, write end).
    private func makePipe() throws -> (Int32, Int32) {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        return (ends[0], ends[1])
    }

    private func readAvailable(_ descriptor: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(descriptor, &buffer, buffer.count)
        return String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
    }

    @Test("A line is written whole")
    func writesWhole() throws {
        let (reader, writer) = try makePipe()
        defer { close(reader); close(writer) }
        #expect(DescriptorWriter(descriptor: writer).write("time=now level=info msg=ok\n"))
        #expect(readAvailable(reader) == "time=now level=info msg=ok\n")
    }

    @Test("A pipe whose reader is gone (EPIPE) drops the line instead of ending the process")
    func brokenPipe() throws {
        // As `serve` does at start (and NIO does once it opens a socket); left ignored for the process.
        signal(SIGPIPE, SIG_IGN)
        let (reader, writer) = try makePipe()
        close(reader)
        defer { close(writer) }
        #expect(!DescriptorWriter(descriptor: writer).write("lost\n"))
    }

    @Test("A full non-blocking pipe that never drains drops lines after one bounded wait", .timeLimit(.minutes(1)))
    func fullPipe() throws {
        let (reader, writer) = try makePipe()
        defer { close(reader); close(writer) }
        #expect(fcntl(writer, F_SETFL, fcntl(writer, F_GETFL) | O_NONBLOCK) == 0)
        let block = [UInt8](repeating: UInt8(ascii: "x"), count: 4096)
        var filled = 0
        while filled < 16 << 20, write(writer, block, block.count) > 0 { filled += block.count }
        #expect(errno == EAGAIN)
        let log = DescriptorWriter(descriptor: writer)
        #expect(!log.write("one more line\n"))
        // Stalled: the next lines are dropped without waiting again (not timed here).
        #expect(!log.write("and another\n"))
        // Once the reader drains it, writing works again.
        #expect(fcntl(reader, F_SETFL, fcntl(reader, F_GETFL) | O_NONBLOCK) == 0)
        var sink = [UInt8](repeating: 0, count: 1 << 16)
        while read(reader, &sink, sink.count) > 0 {}
        #expect(log.write("after draining\n"))
    }

    @Test("An invalid descriptor (EBADF) is an error, not a crash")
    func invalidDescriptor() {
        // -1, not a closed pipe: other tests in this process may be handed a just-closed number.
        #expect(!DescriptorWriter(descriptor: -1).write("nowhere\n"))
    }
}
