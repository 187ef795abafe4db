import Foundation
@testable import KubeAPIAuth
@testable import KubeAPIAuthCore
@testable import KubeAPIAuthHTTP
@testable import KubeAPIAuthWebhook
@testable import KubeAPIAuthProxy
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Log queue")
struct LogQueueTests {
    @Test("A reader that stops reading costs lines, counted, and never blocks the logging caller")
    func fullQueueDrops() throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        let (reader, writer) = (ends[0], ends[1])
        let queue = LogQueue(writer: DescriptorWriter(descriptor: writer), capacity: 4)
        queue.start()
        // 16 KiB lines: the pipe (64 KiB) fills, the writer thread blocks on it, the queue fills,
        // and the rest is dropped. Each call returns at once (a blocking call would hang the test).
        let line = String(repeating: "x", count: 16 * 1024 - 1) + "\n"
        for _ in 0..<100 { queue.write(line) }
        let dropped = queue.droppedLines
        #expect(dropped > 0 && dropped < 100, "\(dropped)")

        let metrics = ServiceMetrics()
        metrics.exportDroppedLogLines(of: queue)
        #expect(String(decoding: metrics.render(), as: UTF8.self).contains("kube_api_auth_log_lines_dropped_total \(dropped)"))

        // Once read again, every line that was not dropped arrives whole.
        nonisolated(unsafe) var received = 0
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = read(reader, &buffer, buffer.count)
                if count <= 0 { break }
                received += buffer.prefix(count).filter { $0 == UInt8(ascii: "\n") }.count
            }
            done.signal()
        }
        queue.stop()
        // Stopped: lines are written directly again. Written before the pipe is closed: a write to a
        // closed descriptor number can land in whatever another test opened under that number since.
        queue.write("after\n")
        close(writer)
        done.wait()
        close(reader)
        #expect(received == 100 - dropped + 1)
    }
}
