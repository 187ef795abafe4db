import NIOCore
import NIOEmbedded
import Testing

@testable import KubeAPIAuth
@testable import KubeAPIAuthCore
@testable import KubeAPIAuthHTTP
@testable import KubeAPIAuthWebhook
@testable import KubeAPIAuthProxy

@Suite("Upstream connections of the proxy")
struct UpstreamHandlerTests {
    @Test("An idle connection closes the idle timeout after its last release, however often it was reused before")
    func idleTimeout() throws {
        let channel = EmbeddedChannel()
        let loop = channel.embeddedEventLoop
        let handler = UpstreamHandler(pool: nil)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        handler.becameIdle(timeout: .seconds(45))
        loop.advanceTime(by: .seconds(30))
        #expect(channel.isActive)
        // Reused and released many times: the idle clock restarts at each release.
        for _ in 0..<1000 {
            handler.becameIdle(timeout: .seconds(45))
        }
        loop.advanceTime(by: .seconds(30))
        #expect(channel.isActive, "closed 30 s after the last release")
        loop.advanceTime(by: .seconds(15))
        #expect(!channel.isActive, "still open 45 s after the last release")
    }
}
