import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A failed API call: a Kubernetes `Status` from the server, or no usable answer at all.
public struct KubeError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The server answered with this HTTP status and (usually) a `Status` body.
        case status(code: Int, reason: String)
        /// No connection, a timeout, TLS failure, or the stream broke.
        case transport
        /// The answer could not be read.
        case decoding
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var code: Int? {
        if case .status(let code, _) = kind { return code }
        return nil
    }

    public var reason: String? {
        if case .status(_, let reason) = kind { return reason }
        return nil
    }

    public var isNotFound: Bool { code == 404 }
    public var isConflict: Bool { code == 409 && reason != "AlreadyExists" }
    public var isAlreadyExists: Bool { code == 409 && reason == "AlreadyExists" }
    /// The requested resourceVersion is too old: relist.
    public var isGone: Bool { code == 410 || reason == "Expired" || reason == "Gone" }

    public var description: String {
        switch kind {
        case .status(let code, let reason): return "\(code) \(reason): \(message)"
        case .transport: return "transport error: \(message)"
        case .decoding: return "unreadable answer: \(message)"
        }
    }
}

extension KubeError {
    /// A transport failure, with `underlying` worded for a log line: the system's words for a
    /// socket error ("Connection refused"), not the nested descriptions of the client's error types.
    static func transport(_ context: String, _ underlying: any Error) -> KubeError {
        KubeError(.transport, "\(context): \(readable(underlying))")
    }

    static func readable(_ error: any Error) -> String {
        if let io = error as? IOError {
            return String(cString: strerror(io.errnoCode))
        }
        if let connection = error as? NIOConnectionError {
            if let first = connection.connectionErrors.first { return readable(first.error) }
            if let dns = connection.dnsAAAAError ?? connection.dnsAError { return "name resolution failed: \(readable(dns))" }
            return "connection failed"
        }
        if let client = error as? HTTPClientError {
            switch client {
            case .connectTimeout: return "connect timed out"
            case .deadlineExceeded, .readTimeout: return "timed out"
            case .remoteConnectionClosed: return "connection closed by the server"
            default: return "\(client)".replacingOccurrences(of: "HTTPClientError.", with: "")
            }
        }
        if let tls = error as? NIOSSLError { return "TLS: \(tls)" }
        return "\(error)"
    }
}

/// The `Status` object Kubernetes sends with errors.
struct StatusBody: Decodable, Sendable {
    var code: Int?
    var reason: String?
    var message: String?
}
