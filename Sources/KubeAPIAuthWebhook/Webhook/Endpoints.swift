import NIOCore
import NIOHTTP1
import RancherAuth
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// Routes requests to answers. Routing uses the path alone: kube-apiserver appends
/// `?timeout=30s` to the configured webhook URL.
///
/// Mirrors the Go service's router where it is observable: unknown paths 404
/// (`404 page not found`), known paths with another method 405, a trailing slash or an unclean
/// path 301 to the canonical one.
public struct Endpoints: Sendable {
    let webhook: WebhookDoor
    let store: RecordStore
    let metrics: ServiceMetrics?
    let servesReviews: Bool

    /// - Parameters:
    ///   - metrics: served on `GET /metrics` when given.
    ///   - servesReviews: false for a metrics-only listener (`--metrics-listen`).
    public init(webhook: WebhookDoor, store: RecordStore, metrics: ServiceMetrics? = nil, servesReviews: Bool = true) {
        self.webhook = webhook
        self.store = store
        self.metrics = metrics
        self.servesReviews = servesReviews
    }

    public struct Request {
        public let method: HTTPMethod
        public let uri: String
        public let authorization: String?
        /// The peer, `ip:port`, for the audit line.
        public let source: String
        /// The URI up to `?`, and the route it names: worked out once per request.
        let path: Substring
        let route: Route?

        public init(method: HTTPMethod, uri: String, authorization: String? = nil, source: String = "-") {
            self.method = method
            self.uri = uri
            self.authorization = authorization
            self.source = source
            self.path = Endpoints.path(of: uri)
            self.route = Route(path: path)
        }

        /// Whether this request would read a body (only the POST routes do).
        public var acceptsBody: Bool {
            method == .POST && route?.allowedMethod == .POST
        }
    }

    enum Route: Equatable {
        case authenticate
        case selfSubjectReview(apiVersion: String)
        case healthcheck, livez, readyz, metrics

        var allowedMethod: HTTPMethod {
            switch self {
            case .authenticate, .selfSubjectReview: return .POST
            case .healthcheck, .livez, .readyz, .metrics: return .GET
            }
        }

        init?(path: Substring) {
            // The review route first, compared as bytes: it is nearly every request.
            if path.utf8.elementsEqual("/v1/authenticate".utf8) {
                self = .authenticate
                return
            }
            switch path {
            case "/healthcheck": self = .healthcheck
            case "/livez": self = .livez
            case "/readyz": self = .readyz
            case "/metrics": self = .metrics
            case "/apis/authentication.k8s.io/v1/selfsubjectreviews":
                self = .selfSubjectReview(apiVersion: "authentication.k8s.io/v1")
            case "/apis/authentication.k8s.io/v1beta1/selfsubjectreviews":
                self = .selfSubjectReview(apiVersion: "authentication.k8s.io/v1beta1")
            case "/apis/authentication.k8s.io/v1alpha1/selfsubjectreviews":
                self = .selfSubjectReview(apiVersion: "authentication.k8s.io/v1alpha1")
            default: return nil
            }
        }
    }

    static func path(of uri: String) -> Substring {
        uri[..<(uri.utf8.firstIndex(of: UInt8(ascii: "?")) ?? uri.endIndex)]
    }

    public func handle(_ request: Request, body: UnsafeRawBufferPointer) -> Eventual<HTTPAnswer> {
        guard let route = request.route, isServed(route) else {
            return .now(Self.redirectOrNotFound(uri: request.uri, path: request.path))
        }
        guard request.method == route.allowedMethod else {
            return .now(HTTPAnswer(status: .methodNotAllowed, headers: [("Allow", "\(route.allowedMethod.rawValue)")]))
        }
        switch route {
        case .authenticate:
            return webhook.tokenReview(body: body, source: request.source)
        case .selfSubjectReview(let apiVersion):
            return webhook.selfSubjectReview(
                authorization: request.authorization, apiVersion: apiVersion, source: request.source)
        case .metrics:
            return .now(HTTPAnswer(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics?.render() ?? []))
        case .healthcheck:
            // Compatibility with the Go service: always 200 with an empty body, no checks.
            return .now(HTTPAnswer(status: .ok))
        case .livez:
            return .now(.text("ok\n"))
        case .readyz:
            return .now(readiness(verbose: request.uri.contains("verbose")))
        }
    }

    private func isServed(_ route: Route) -> Bool {
        switch route {
        case .metrics: return metrics != nil
        case .authenticate, .selfSubjectReview, .healthcheck: return servesReviews
        case .livez, .readyz: return true
        }
    }

    /// 200 once records are loaded (from the API, the snapshot file or a directory), else 503.
    /// `?verbose` adds one line per record kind: sync and watch state, and how current the data is.
    func readiness(verbose: Bool) -> HTTPAnswer {
        let status = store.status
        let source = store.sourceDetails
        var lines = source.lines
        if let snapshot = status.snapshot {
            if let emergency = snapshot.emergency {
                lines.append("emergency access: on, \(emergency.keys.count) key(s), \(emergency.revoked.count) revoked token id(s)")
            } else {
                lines.append("emergency access: off (no usable emergency Secret)")
            }
            lines += store.censusLines
        }
        let details = verbose ? lines.map { "  \($0)\n" }.joined() : ""
        guard status.snapshot != nil else {
            return .text("not ready: records from \(status.source) are not loaded yet\n" + details, status: .serviceUnavailable)
        }
        var text = "ok: serving records from \(status.source), generation \(status.generation)"
        if let loadedAt = status.loadedAt { text += ", loaded at \(RFC3339.format(loadedAt))" }
        if status.problemCount > 0 { text += ", \(status.problemCount) problem(s) in the last load (see logs)" }
        if !verbose, source.servingFromSnapshotFile {
            text += ", serving from the snapshot file"
        }
        return .text(text + "\n" + details)
    }

    static func redirectOrNotFound(uri: String, path: Substring) -> HTTPAnswer {
        let query = uri[path.endIndex...]
        var canonical = cleanPath(path)
        if canonical.count > 1, canonical.hasSuffix("/"), Route(path: canonical.dropLast()[...]) != nil {
            canonical.removeLast()
        }
        if canonical != path, Route(path: canonical[...]) != nil {
            return HTTPAnswer(status: .movedPermanently, headers: [("Location", canonical + query)])
        }
        return .text("404 page not found\n", status: .notFound)
    }

    /// Go's `path.Clean` as gorilla/mux applies it: collapse `//`, resolve `.` and `..`, keep a
    /// trailing slash.
    static func cleanPath(_ path: Substring) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                _ = parts.popLast()
                continue
            }
            parts.append(part)
        }
        var cleaned = "/" + parts.joined(separator: "/")
        if path.hasSuffix("/"), cleaned != "/" { cleaned += "/" }
        return cleaned
    }
}
