import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import Synchronization

/// A resource type's place in the REST API.
public struct APIResource: Sendable, Hashable, CustomStringConvertible {
    public var group: String
    public var version: String
    public var plural: String

    public init(group: String, version: String, plural: String) {
        self.group = group
        self.version = version
        self.plural = plural
    }

    func path(namespace: String, name: String? = nil) -> String {
        let prefix = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        let collection = "\(prefix)/namespaces/\(namespace)/\(plural)"
        return name.map { "\(collection)/\($0)" } ?? collection
    }

    public var description: String { group.isEmpty ? plural : "\(plural).\(group)" }
}

/// An object that can tell its own `metadata.name` and `metadata.resourceVersion` once decoded,
/// so that a ``LenientObject`` of it decodes the metadata once, not twice.
public protocol KubernetesObject {
    var objectName: String { get }
    var objectResourceVersion: String? { get }
}

/// One object of a list or watch that may fail to decode on its own without failing the rest.
public struct LenientObject<T: Decodable & Sendable>: Decodable, Sendable {
    public let name: String
    public let resourceVersion: String?
    public let result: Result<T, KubeError>

    /// An object decoded without `JSONDecoder` (``ListPageDecodable``).
    public init(name: String, resourceVersion: String?, result: Result<T, KubeError>) {
        self.name = name
        self.resourceVersion = resourceVersion
        self.result = result
    }

    private struct Header: Decodable {
        struct Metadata: Decodable {
            var name: String?
            var resourceVersion: String?
        }
        var metadata: Metadata?
    }

    public init(from decoder: any Decoder) throws {
        do {
            let object = try T(from: decoder)
            result = .success(object)
            // Read from the object when it can say (decoding the header as well was a fifth of
            // the CPU of syncing 100,000 tokens and Secrets).
            if let object = object as? any KubernetesObject {
                name = object.objectName
                resourceVersion = object.objectResourceVersion
                return
            }
        } catch {
            result = .failure(KubeError(.decoding, Self.describe(error, below: decoder.codingPath.count)))
        }
        let header = try? Header(from: decoder)
        name = header?.metadata?.name ?? ""
        resourceVersion = header?.metadata?.resourceVersion
    }

    /// Names the field (relative to the object, skipping the first `depth` path components), never
    /// its value (objects include Secrets).
    static func describe(_ error: any Error, below depth: Int = 0) -> String {
        func path(_ components: [any CodingKey]) -> String {
            components.dropFirst(depth).map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case DecodingError.typeMismatch(let type, let context):
            return "field \(path(context.codingPath)): expected \(type)"
        case DecodingError.valueNotFound(let type, let context):
            return "field \(path(context.codingPath)): expected \(type), found null"
        case DecodingError.dataCorrupted(let context):
            return "field \(path(context.codingPath)): invalid value"
        case DecodingError.keyNotFound(let key, let context):
            return "field \(path(context.codingPath + [key])) is missing"
        case let error as any CustomStringConvertible:
            return error.description
        default:
            return "cannot be decoded"
        }
    }
}

/// An object type whose list pages can be read without `JSONDecoder`: ``decodeListPage(_:)``
/// returns a page exactly as ``KubeClient/list(_:namespace:as:pageSize:fieldSelector:each:)``
/// would decode it with `JSONDecoder`, or `nil` when it cannot be sure, and then `JSONDecoder`
/// decodes the page.
public protocol ListPageDecodable: Decodable, Sendable {
    static func decodeListPage(_ bytes: UnsafeRawBufferPointer) -> ListPage<Self>?
}

/// One page of a list, decoded.
public struct ListPage<T: Decodable & Sendable>: Sendable {
    public var items: [LenientObject<T>]
    /// `metadata.resourceVersion`, when present and not `null`.
    public var resourceVersion: String?
    /// `metadata.continue`, when present and not `null`.
    public var continueToken: String?

    public init(items: [LenientObject<T>], resourceVersion: String?, continueToken: String?) {
        self.items = items
        self.resourceVersion = resourceVersion
        self.continueToken = continueToken
    }
}

/// A watch event.
public enum WatchEvent<T: Decodable & Sendable>: Sendable {
    case added(LenientObject<T>)
    case modified(LenientObject<T>)
    case deleted(LenientObject<T>)
    case bookmark(resourceVersion: String)
    /// An ERROR event (e.g. 410 Expired); the stream ends after it.
    case error(KubeError)
}

/// A minimal Kubernetes API client on AsyncHTTPClient: get, list, watch, create, update, patch.
public final class KubeClient: Sendable {
    public let configuration: KubeConfig
    private let http: HTTPClient
    private let baseURL: String
    private let tokenCache = Mutex<(token: String, readAt: ContinuousClock.Instant)?>(nil)
    /// How long a token read from a file is reused before the file is read again.
    let tokenRereadInterval: Duration
    let logger: Logger

    public init(configuration: KubeConfig, logger: Logger, tokenRereadInterval: Duration = .seconds(60)) throws(KubeError) {
        self.configuration = configuration
        self.logger = logger
        self.tokenRereadInterval = tokenRereadInterval
        baseURL = configuration.server.hasSuffix("/") ? String(configuration.server.dropLast()) : configuration.server
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        // Waiting for the peer's close_notify must not hold up shutdown (NIOSSL's default is 5 s).
        // Measured: with 1 s, an idle proxy took 1.0 s from SIGTERM to exit, 0.9 s of it this wait
        // on its watch connections; with 250 ms it exits in about 0.3 s.
        tls.shutdownTimeout = .milliseconds(250)
        do {
            if let ca = configuration.certificateAuthorityPEM {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
            }
            if configuration.insecureSkipTLSVerify { tls.certificateVerification = .none }
            if case .clientCertificate(let certificate, let key) = configuration.credentials {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            }
        } catch {
            throw KubeError(.transport, "TLS material of the kubeconfig cannot be used: \(error)")
        }
        var clientConfiguration = HTTPClient.Configuration(tlsConfiguration: tls)
        // AsyncHTTPClient retries refused connections until the connect timeout; the API server is
        // local (or the in-cluster service), so a short one keeps reconnection loops responsive.
        clientConfiguration.timeout = .init(connect: .seconds(3), read: nil)
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    /// For a client that was made but is not going to be used (a configuration error after it).
    public func syncShutdown() throws {
        try http.syncShutdown()
    }

    /// The bearer token of the configuration (a token file is re-read every `tokenRereadInterval`,
    /// so a rotated projected service-account token is picked up); `nil` for other credentials.
    public func bearerToken() throws(KubeError) -> String? {
        switch configuration.credentials {
        case .token(let token): return token
        case .tokenFile(let path):
            // Projected service-account tokens rotate (kubelet rewrites the file); re-read it periodically.
            let now = ContinuousClock.now
            if let cached = tokenCache.withLock({ $0 }), cached.readAt.duration(to: now) < tokenRereadInterval { return cached.token }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KubeError(.transport, "token file \(path) cannot be read")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            tokenCache.withLock { $0 = (token, now) }
            return token
        case .none, .clientCertificate:
            return nil
        }
    }

    private func request(_ method: HTTPMethod, _ path: String, contentType: String? = nil, body: Data? = nil) throws(KubeError) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers = try headers(contentType: body == nil ? nil : contentType ?? "application/json")
        if let body { request.body = .bytes(ByteBuffer(data: body)) }
        return request
    }

    /// The headers of every request: JSON, the user agent, the bearer token when there is one.
    private func headers(contentType: String?) throws(KubeError) -> HTTPHeaders {
        var headers = HTTPHeaders([("accept", "application/json"), ("user-agent", "kube-api-auth")])
        if let token = try bearerToken() { headers.add(name: "authorization", value: "Bearer \(token)") }
        if let contentType { headers.add(name: "content-type", value: contentType) }
        return headers
    }

    /// Sends a request and returns the body of a 2xx answer; other answers become typed errors.
    private func send(_ request: HTTPClientRequest, timeout: TimeAmount = .seconds(30)) async throws(KubeError) -> Data {
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(request, timeout: timeout)
            body = try await response.body.collect(upTo: 256 << 20)
        } catch {
            throw KubeError.transport("\(request.method.rawValue) \(request.url)", error)
        }
        let data = Data(buffer: body)
        guard (200..<300).contains(response.status.code) else { throw Self.statusError(response.status, data) }
        return data
    }

    static func statusError(_ status: HTTPResponseStatus, _ body: Data) -> KubeError {
        let decoded = try? JSONDecoder().decode(StatusBody.self, from: body)
        return KubeError(
            .status(code: decoded?.code ?? Int(status.code), reason: decoded?.reason ?? status.reasonPhrase),
            decoded?.message ?? status.reasonPhrase)
    }

    func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws(KubeError) -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch {
            throw KubeError(.decoding, "\(T.self): \(LenientObject<String>.describe(error))")
        }
    }

    // MARK: Verbs

    public func get(_ resource: APIResource, namespace: String, name: String) async throws(KubeError) -> Data {
        try await send(try request(.GET, resource.path(namespace: namespace, name: name)))
    }

    /// GETs a path of the API that is not a namespaced object (discovery, for example `/apis/GROUP/VERSION`).
    public func get(path: String) async throws(KubeError) -> Data {
        try await send(try request(.GET, path))
    }

    private struct ListBody<T: Decodable & Sendable>: Decodable {
        struct Metadata: Decodable {
            var resourceVersion: String?
            var `continue`: String?
        }
        var metadata: Metadata?
        var items: [LenientObject<T>]?
    }

    /// All objects of `resource` in `namespace`, each decoded on its own, and the list's resourceVersion.
    public func list<T: Decodable & Sendable>(
        _ resource: APIResource, namespace: String, as type: T.Type, pageSize: Int = 500, fieldSelector: String? = nil
    ) async throws(KubeError) -> (items: [LenientObject<T>], resourceVersion: String) {
        var items: [LenientObject<T>] = []
        let resourceVersion = try await list(resource, namespace: namespace, as: type, pageSize: pageSize, fieldSelector: fieldSelector) {
            items.append($0)
        }
        return (items, resourceVersion)
    }

    /// Hands every object of `resource` in `namespace` to `body` as its page arrives, each decoded
    /// on its own; returns the list's resourceVersion.
    ///
    /// Read in pages of `pageSize` (`limit` and `continue`, as client-go's pager does) so that a
    /// namespace with 100,000 Secrets is never one 60 MB response decoded at once: memory holds
    /// one page and whatever `body` keeps. An expired `continue` token is a 410 (`isGone`); the
    /// caller lists again from the start. When a page fails, the objects already handed over are
    /// part of an incomplete list: use them only once this returns.
    public func list<T: Decodable & Sendable>(
        _ resource: APIResource, namespace: String, as type: T.Type, pageSize: Int = 500, fieldSelector: String? = nil,
        each body: (LenientObject<T>) -> Void
    ) async throws(KubeError) -> String {
        var resourceVersion = ""
        var continueToken: String?
        repeat {
            var query = "?limit=\(pageSize)"
            if let fieldSelector { query += "&fieldSelector=" + Self.queryEscaped(fieldSelector) }
            if let continueToken { query += "&continue=" + Self.queryEscaped(continueToken) }
            let data = try await send(try request(.GET, resource.path(namespace: namespace) + query), timeout: .seconds(120))
            let page = try Self.decodePage(T.self, data)
            for item in page.items { body(item) }
            resourceVersion = page.resourceVersion ?? ""
            continueToken = page.continueToken.flatMap { $0.isEmpty ? nil : $0 }
        } while continueToken != nil
        return resourceVersion
    }

    /// A list page: by the type's own reader when it has one (``ListPageDecodable``) and it
    /// settles the page, else by `JSONDecoder`.
    static func decodePage<T: Decodable & Sendable>(_ type: T.Type, _ data: Data) throws(KubeError) -> ListPage<T> {
        if let reader = T.self as? any ListPageDecodable.Type, let page = data.withUnsafeBytes({ readPage(reader, $0) }) as? ListPage<T> {
            return page
        }
        do {
            let page = try JSONDecoder().decode(ListBody<T>.self, from: data)
            return ListPage(items: page.items ?? [], resourceVersion: page.metadata?.resourceVersion, continueToken: page.metadata?.continue)
        } catch {
            throw KubeError(.decoding, "\(ListBody<T>.self): \(LenientObject<String>.describe(error))")
        }
    }

    private static func readPage<R: ListPageDecodable>(_ reader: R.Type, _ bytes: UnsafeRawBufferPointer) -> Any? {
        R.decodeListPage(bytes)
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters (continue tokens are base64).
    static func queryEscaped(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? value
    }

    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// POSTs `body` to a cluster-level path (a review object such as a SubjectAccessReview).
    func post(_ path: String, body: Data) async throws(KubeError) -> Data {
        try await send(try request(.POST, path, body: body))
    }

    /// The same POST for callers on an event loop (a channel handler): the answer is delivered on
    /// `eventLoop`, and no task is left running outside the caller's control.
    func post(_ path: String, body: Data, on eventLoop: any EventLoop, timeout: TimeAmount = .seconds(10)) -> EventLoopFuture<Data> {
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(
                url: baseURL + path, method: .POST, headers: try headers(contentType: "application/json"), body: .byteBuffer(ByteBuffer(data: body)))
        } catch {
            return eventLoop.makeFailedFuture(KubeError.transport("POST \(baseURL + path)", error))
        }
        return http.execute(request: request, eventLoop: .delegate(on: eventLoop), deadline: .now() + timeout)
            .flatMapErrorThrowing { error in throw KubeError.transport("POST \(request.url)", error) }
            .flatMapThrowing { response in
                let data = response.body.map { Data(buffer: $0) } ?? Data()
                guard (200..<300).contains(response.status.code) else { throw Self.statusError(response.status, data) }
                return data
            }
    }

    public func create(_ resource: APIResource, namespace: String, body: Data) async throws(KubeError) -> Data {
        try await send(try request(.POST, resource.path(namespace: namespace), body: body))
    }

    public func update(_ resource: APIResource, namespace: String, name: String, body: Data) async throws(KubeError) -> Data {
        try await send(try request(.PUT, resource.path(namespace: namespace, name: name), body: body))
    }

    /// RFC 7386 merge patch; a `metadata.resourceVersion` in it makes it conditional (409 on mismatch).
    public func mergePatch(_ resource: APIResource, namespace: String, name: String, patch: Data) async throws(KubeError) -> Data {
        try await send(try request(.PATCH, resource.path(namespace: namespace, name: name), contentType: "application/merge-patch+json", body: patch))
    }

    /// RFC 6902 JSON patch.
    public func jsonPatch(_ resource: APIResource, namespace: String, name: String, patch: Data) async throws(KubeError) -> Data {
        try await send(try request(.PATCH, resource.path(namespace: namespace, name: name), contentType: "application/json-patch+json", body: patch))
    }

    private struct RawEvent<T: Decodable & Sendable>: Decodable {
        var type: String
        var object: LenientObject<T>?
        var status: StatusBody?

        enum CodingKeys: String, CodingKey { case type, object }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            type = try container.decode(String.self, forKey: .type)
            if type == "ERROR" {
                status = try container.decodeIfPresent(StatusBody.self, forKey: .object)
            } else {
                object = try container.decodeIfPresent(LenientObject<T>.self, forKey: .object)
            }
        }
    }

    /// Watches `resource` from `resourceVersion` with bookmarks; the stream ends when the server
    /// ends it (timeout, restart) and throws when the connection breaks.
    public func watch<T: Decodable & Sendable>(
        _ resource: APIResource, namespace: String, resourceVersion: String, timeoutSeconds: Int, as type: T.Type,
        fieldSelector: String? = nil
    ) async throws(KubeError) -> AsyncThrowingStream<WatchEvent<T>, any Error> {
        var query = "?watch=1&allowWatchBookmarks=true&resourceVersion=\(resourceVersion)&timeoutSeconds=\(timeoutSeconds)"
        if let fieldSelector { query += "&fieldSelector=" + Self.queryEscaped(fieldSelector) }
        let request = try request(.GET, resource.path(namespace: namespace) + query)
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(Int64(timeoutSeconds) + 30))
        } catch {
            throw KubeError.transport("watch \(resource)", error)
        }
        guard response.status == .ok else {
            let body = (try? await response.body.collect(upTo: 1 << 20)).map { Data(buffer: $0) } ?? Data()
            throw Self.statusError(response.status, body)
        }
        return AsyncThrowingStream { continuation in
            let task = Task {
                var pending = Data()
                do {
                    for try await chunk in response.body {
                        pending.append(contentsOf: chunk.readableBytesView)
                        while let newline = pending.firstIndex(of: 0x0A) {
                            let line = pending[pending.startIndex..<newline]
                            pending.removeSubrange(pending.startIndex...newline)
                            guard !line.isEmpty else { continue }
                            continuation.yield(try Self.event(from: line, as: T.self))
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: (error as? KubeError) ?? KubeError.transport("watch \(resource)", error))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    static func event<T: Decodable & Sendable>(from line: Data, as type: T.Type) throws(KubeError) -> WatchEvent<T> {
        let raw: RawEvent<T>
        do {
            raw = try JSONDecoder().decode(RawEvent<T>.self, from: line)
        } catch {
            throw KubeError(.decoding, "watch event: \(LenientObject<String>.describe(error))")
        }
        switch raw.type {
        case "ADDED", "MODIFIED", "DELETED":
            guard let object = raw.object else { throw KubeError(.decoding, "watch event without object") }
            return raw.type == "ADDED" ? .added(object) : raw.type == "MODIFIED" ? .modified(object) : .deleted(object)
        case "BOOKMARK":
            return .bookmark(resourceVersion: raw.object?.resourceVersion ?? "")
        case "ERROR":
            let status = raw.status
            return .error(KubeError(.status(code: status?.code ?? 500, reason: status?.reason ?? "Unknown"), status?.message ?? "watch error"))
        default:
            throw KubeError(.decoding, "unknown watch event type \(raw.type)")
        }
    }
}
