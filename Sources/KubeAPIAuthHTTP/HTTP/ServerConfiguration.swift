import NIOCore
import KubeAPIAuthCore

/// Listener, limits and timeouts of the HTTP server. Defaults follow the Go service where it
/// has them (10 s to read headers, 30 s to read a request, 120 s idle, 15 s drain).
public struct ServerConfiguration: Sendable {
    /// Addresses to bind; one whose address family the host lacks (e.g. `::1` without IPv6) is
    /// skipped with a warning, and at least one must bind.
    public var listen: [ListenAddress]
    /// Request bodies larger than this are answered 413; a TokenReview is well under 4 KiB.
    public var maxBodyBytes: Int = 64 * 1024
    /// Header bytes per request (names and values); beyond it NIO's decoder answers 431/400.
    public var maxHeaderBytes: Int = 16 * 1024
    public var headerTimeout: TimeAmount = .seconds(10)
    public var requestReadTimeout: TimeAmount = .seconds(30)
    public var idleTimeout: TimeAmount = .seconds(120)
    public var drainTimeout: Duration = .seconds(15)
    /// Connections open at once; more are closed as soon as they are accepted. kube-apiserver
    /// keeps a handful of keep-alive connections per webhook.
    public var maxConnections: Int = 1024
    /// Serve HTTPS with the box's current context instead of plain HTTP.
    public var tls: TLSContextBox?

    public static let defaultListen = [
        ListenAddress(host: "127.0.0.1", port: 6440), ListenAddress(host: "::1", port: 6440),
    ]

    public init(listen: [ListenAddress] = ServerConfiguration.defaultListen) {
        self.listen = listen
    }
}

/// `host:port`, `[ipv6]:port` or `:port` (all interfaces, as in Go).
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(parsing text: String) throws(ParseError) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ParseError(description: "listen address \"\(text)\" must look like [::1]:6440")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
                throw ParseError(description: "listen address \"\(text)\" must look like 127.0.0.1:6440 or [::1]:6440")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw ParseError(description: "listen address \"\(text)\" has no valid port (0–65535)")
        }
        self.host = host.isEmpty ? "::" : String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
