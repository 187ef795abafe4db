import NIOCore
import NIOHTTP1
import RancherAuth
import KubeAPIAuthCore

/// A complete HTTP response, independent of the connection it goes out on.
public struct HTTPAnswer: Sendable {
    public var status: HTTPResponseStatus
    public var contentType: String?
    public var body: [UInt8]
    public var headers: [(String, String)]

    public init(status: HTTPResponseStatus, contentType: String? = nil, body: [UInt8] = [], headers: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public static func json(_ body: [UInt8], status: HTTPResponseStatus = .ok) -> HTTPAnswer {
        HTTPAnswer(status: status, contentType: "application/json", body: body)
    }

    public static func text(_ text: String, status: HTTPResponseStatus = .ok) -> HTTPAnswer {
        HTTPAnswer(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }

    /// A Kubernetes `Status` failure body.
    public static func status(_ status: HTTPResponseStatus, reason: String, message: String) -> HTTPAnswer {
        .json(KubernetesStatus.failureBody(code: Int(status.code), reason: reason, message: message), status: status)
    }

    /// 503 for "cannot verify now". Deliberately without `Retry-After`: kube-apiserver retries a
    /// 503 that has one every second until its 30 s timeout (kubectl hangs), and a bare 503 not at all.
    public static func unavailable(_ message: String) -> HTTPAnswer {
        .status(.serviceUnavailable, reason: "ServiceUnavailable", message: message)
    }
}
