import NIOCore
import NIOHTTP1
import RancherAuth
import KubeAPIAuthCore

/// A complete HTTP response, independent of the connection it goes out on.
public struct HTTPAnswer: Sendable {
    public var status: HTTPResponseStatus
    public var contentType: String?
    public var headers: [(String, String)]
    /// The body is `bodyPrefix` then `bodyRest`: a TokenReview's success answer is the same after
    /// its `apiVersion` in both versions, so a user keeps that part once and each version's
    /// beginning is shared (``bodyCount`` and ``writeBody(to:)`` send it without joining them).
    private var bodyPrefix: [UInt8]
    private var bodyRest: [UInt8]

    public var body: [UInt8] {
        get { bodyPrefix.isEmpty ? bodyRest : bodyPrefix + bodyRest }
        set {
            bodyPrefix = []
            bodyRest = newValue
        }
    }

    public var bodyCount: Int { bodyPrefix.count + bodyRest.count }

    public func writeBody(to buffer: inout ByteBuffer) {
        buffer.writeBytes(bodyPrefix)
        buffer.writeBytes(bodyRest)
    }

    public init(status: HTTPResponseStatus, contentType: String? = nil, body: [UInt8] = [], headers: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.bodyPrefix = []
        self.bodyRest = body
        self.headers = headers
    }

    public static func json(_ body: [UInt8], status: HTTPResponseStatus = .ok) -> HTTPAnswer {
        HTTPAnswer(status: status, contentType: "application/json", body: body)
    }

    /// A JSON body sent as `prefix` then `rest`.
    public static func json(prefix: [UInt8], _ rest: [UInt8], status: HTTPResponseStatus = .ok) -> HTTPAnswer {
        var answer = HTTPAnswer(status: status, contentType: "application/json", body: rest)
        answer.bodyPrefix = prefix
        return answer
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
