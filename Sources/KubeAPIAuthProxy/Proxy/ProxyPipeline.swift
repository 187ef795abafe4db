import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import NIOTLS
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// How an accepted proxy connection is set up: TLS, then HTTP/2 or HTTP/1.1 as ALPN chose, with
/// a ``ProxyStreamHandler`` per HTTP/1.1 connection or per HTTP/2 stream.
package enum ProxyPipeline {
    package static func configure(
        _ channel: any Channel, server: ServerConfiguration, door: ProxyDoor, pool: UpstreamPool, logger: Logger,
        onFirstHead: @escaping @Sendable () -> Void
    ) throws {
        guard let tls = server.tls else { throw ConfigurationError("the proxy serves TLS only") }
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(NIOSSLServerHandler(context: tls.current))
        // The header timeout bounds the TLS handshake and every HTTP/1.1 request head; once a head
        // is complete no read deadline applies (watches and uploads stream for as long as they last).
        let timeouts = ConnectionTimeoutHandler(
            headerTimeout: server.headerTimeout, requestReadTimeout: server.requestReadTimeout, idleTimeout: server.idleTimeout,
            onFirstHead: onFirstHead)
        try pipeline.addHandler(timeouts)
        let negotiation = ApplicationProtocolNegotiationHandler { result, channel in
            channel.eventLoop.makeCompletedFuture {
                switch result {
                case .negotiated("h2"):
                    try configureHTTP2(channel, door: door, pool: pool, logger: logger, timeouts: timeouts)
                default:
                    try configureHTTP1(channel, server: server, door: door, pool: pool, logger: logger, timeouts: timeouts)
                }
            }
        }
        try pipeline.addHandler(negotiation)
    }

    /// The HTTP/1.1 handlers of a proxy connection after its TLS and timeouts (also what the
    /// in-process benchmark runs on an embedded channel).
    package static func configureHTTP1(
        _ channel: any Channel, server: ServerConfiguration, door: ProxyDoor, pool: UpstreamPool, logger: Logger,
        timeouts: ConnectionTimeoutHandler
    ) throws {
        let limits = NIOHTTPDecoderLimitConfiguration.service(maxHeaderBytes: server.maxHeaderBytes)
        let encoder = HTTPResponseEncoder()
        // Bytes after an upgrade request's head belong to the upgraded protocol: forwarded on removal.
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: limits))
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(encoder)
        try pipeline.addHandler(decoder)
        try pipeline.addHandler(
            ProxyStreamHandler(
                door: door, pool: pool, http1: .init(encoder: encoder, decoder: decoder, timeouts: timeouts), logger: logger))
    }

    private static func configureHTTP2(
        _ channel: any Channel, door: ProxyDoor, pool: UpstreamPool, logger: Logger, timeouts: ConnectionTimeoutHandler
    ) throws {
        // HTTP/2 multiplexes long-running streams: no read deadline while one is open; each stream
        // ends when its exchange does. With none open, the connection's idle deadline runs.
        timeouts.http2Started()
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 250),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16),
        ]
        // On shutdown (ChannelShouldQuiesceEvent) NIO's connection manager sends GOAWAY (then a PING
        // and the final GOAWAY), so clients open no new streams here, and closes the connection
        // once its streams have ended; the drain timeout ends the rest.
        let manager = NIOHTTP2ServerConnectionManagementHandler(
            eventLoop: channel.eventLoop, configuration: .init(maxIdleTime: nil, maxAge: nil, maxGraceTime: nil, keepalive: nil))
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connection, streamConfiguration: .init(),
            streamDelegate: StreamLifetimes(manager: manager.http2StreamDelegate, timeouts: timeouts, eventLoop: channel.eventLoop)
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try stream.pipeline.syncOperations.addHandler(ProxyStreamHandler(door: door, pool: pool, http1: nil, logger: logger))
            }
        }
        try channel.pipeline.syncOperations.addHandler(manager)
    }
}

/// Tells NIO's connection manager and the connection's timeouts when an HTTP/2 stream opens and
/// closes (the timeouts close a connection left with no stream open; see
/// ``ConnectionTimeoutHandler``).
private struct StreamLifetimes: NIOHTTP2StreamDelegate {
    let manager: NIOHTTP2ServerConnectionManagementHandler.HTTP2StreamDelegate
    let timeouts: NIOLoopBound<ConnectionTimeoutHandler>

    init(manager: NIOHTTP2ServerConnectionManagementHandler.HTTP2StreamDelegate, timeouts: ConnectionTimeoutHandler, eventLoop: any EventLoop) {
        self.manager = manager
        self.timeouts = NIOLoopBound(timeouts, eventLoop: eventLoop)
    }

    func streamCreated(_ id: HTTP2StreamID, channel: any Channel) {
        manager.streamCreated(id, channel: channel)
        onLoop { $0.http2StreamOpened() }
    }

    func streamClosed(_ id: HTTP2StreamID, channel: any Channel) {
        manager.streamClosed(id, channel: channel)
        onLoop { $0.http2StreamClosed() }
    }

    /// NIO calls these on the connection's event loop; anywhere else, the call moves there.
    private func onLoop(_ body: @escaping @Sendable (ConnectionTimeoutHandler) -> Void) {
        let timeouts = self.timeouts
        if timeouts.eventLoop.inEventLoop { body(timeouts.value) } else { timeouts.eventLoop.execute { body(timeouts.value) } }
    }
}
