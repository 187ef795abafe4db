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

/// The `Status` object Kubernetes sends with errors.
struct StatusBody: Decodable, Sendable {
    var code: Int?
    var reason: String?
    var message: String?
}
