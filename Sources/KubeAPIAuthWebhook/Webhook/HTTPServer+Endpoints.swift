import KubeAPIAuthHTTP
import Logging
import NIOCore
import NIOSSL

extension HTTPServer {
    /// A listener serving `endpoints` (reviews, probes, metrics) over HTTP/1.1.
    public convenience init(
        configuration: ServerConfiguration, endpoints: Endpoints, group: any EventLoopGroup, logger: Logger,
        purpose: String = "reviews", onListening: @escaping @Sendable ([SocketAddress]) -> Void = { _ in }
    ) {
        self.init(configuration: configuration, group: group, logger: logger, purpose: purpose, onListening: onListening) { channel, onFirstHead in
            let pipeline = channel.pipeline.syncOperations
            if let tls = configuration.tls {
                try pipeline.addHandler(NIOSSLServerHandler(context: tls.current))
            }
            // Timers start when the handler is added, so they also bound the TLS handshake.
            try pipeline.addServiceHTTPHandlers(
                endpoints: endpoints, maxBodyBytes: configuration.maxBodyBytes,
                maxHeaderBytes: configuration.maxHeaderBytes, headerTimeout: configuration.headerTimeout,
                requestReadTimeout: configuration.requestReadTimeout, idleTimeout: configuration.idleTimeout,
                onFirstHead: onFirstHead)
        }
    }
}
