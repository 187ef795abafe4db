import NIOCore
import KubeAPIAuthCore

/// A client's address as both doors tell it, so a client's lines can be matched across them.
package struct PeerAddress: Sendable {
    /// What log and audit lines say (`source=`): `ip:port`, `[ipv6]:port`, or `-`.
    package let text: String
    /// The bare address, for `X-Forwarded-For` and per-client limits: `ip`, or `-`.
    package let ip: String

    package static let unknown = PeerAddress(text: "-", ip: "-")

    package init(text: String, ip: String) {
        self.text = text
        self.ip = ip
    }

    package init(of channel: any Channel) {
        // An HTTP/2 stream's remote address is its connection's.
        guard let address = channel.remoteAddress ?? channel.parent?.remoteAddress, let ip = address.ipAddress else {
            self = .unknown
            return
        }
        self.ip = ip
        guard let port = address.port else {
            text = ip
            return
        }
        text = ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
