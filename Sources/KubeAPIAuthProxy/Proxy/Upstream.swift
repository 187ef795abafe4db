import Foundation
import KubeClient
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// Where the proxy forwards to: the kube-apiserver of a kubeconfig or of the in-cluster service
/// account, always over verified TLS, and the bearer token the proxy impersonates with.
///
/// Only a bearer-token credential is accepted. The connections to the apiserver are shared by
/// every request, pass-through ones included, so they must carry no credential of the proxy's: a
/// client certificate would authenticate a pass-through request as the proxy (kube-apiserver's
/// x509 authenticator runs before its token authenticators), widening the client's rights.
public struct UpstreamTarget: Sendable {
    public let host: String
    public let port: Int
    /// What the server certificate is checked against (`nil` for an IP address: checked against it).
    let serverHostname: String?
    let tls: NIOSSLContext
    /// The `Host` header sent upstream.
    let authority: String
    public let client: KubeClient

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Refuses a configuration the proxy must not use upstream (before any client is made from it).
    public static func check(_ configuration: KubeConfig, origin: String) throws(Invalid) {
        switch configuration.credentials {
        case .token, .tokenFile:
            break
        case .clientCertificate:
            throw Invalid(
                description: "\(origin): the proxy's upstream credential is a client certificate; use a bearer token "
                    + "(a service-account token). Requests passed through share the proxy's connections, and a client "
                    + "certificate on them would make kube-apiserver treat every pass-through request as the proxy.")
        case .none:
            throw Invalid(description: "\(origin): the proxy needs a bearer token to impersonate with, and the configuration has none")
        }
        guard !configuration.insecureSkipTLSVerify else {
            throw Invalid(description: "\(origin): insecure-skip-tls-verify is not allowed for the proxy's upstream; give its CA")
        }
    }

    public init(configuration: KubeConfig, client: KubeClient, origin: String) throws(Invalid) {
        try Self.check(configuration, origin: origin)
        guard let url = URLComponents(string: configuration.server), url.scheme == "https", let host = url.host, !host.isEmpty else {
            throw Invalid(description: "\(origin): server \(configuration.server) is not an https:// URL")
        }
        guard url.path.isEmpty || url.path == "/" else {
            throw Invalid(description: "\(origin): server \(configuration.server) has a path; the proxy forwards to the root")
        }
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = url.port ?? 443
        self.authority = port == 443 ? host : "\(host):\(port)"
        let isAddress = (try? SocketAddress(ipAddress: self.host, port: 0)) != nil
        self.serverHostname = isAddress ? nil : self.host
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = ["http/1.1"]
        // As the API client's (KubeClient): a closing upstream connection never holds up the others.
        tls.shutdownTimeout = .milliseconds(250)
        do {
            if let ca = configuration.certificateAuthorityPEM {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
            }
            self.tls = try NIOSSLContext(configuration: tls)
        } catch {
            throw Invalid(description: "\(origin): the certificate authority cannot be used (\(error))")
        }
        self.client = client
    }

    /// The proxy's own bearer token (re-read as a projected token rotates).
    func proxyToken() throws -> String {
        guard let token = try client.bearerToken(), !token.isEmpty else { throw Invalid(description: "the proxy's token is empty") }
        return token
    }
}

/// Keep-alive connections to the upstream, one idle list per event loop so that a connection is
/// always used on the loop of the client connection it serves. Each list belongs to its loop
/// (`NIOLoopBoundBox`): taking and returning a connection is an array operation on the loop that
/// already runs the exchange, with no lock and no hop. (It was one mutex over all loops' lists,
/// taken on every take and release.) A loop outside the group (a test's embedded loop) keeps no
/// idle connections. The connections carry no credential: each request brings its own `Authorization`.
package final class UpstreamPool: Sendable {
    let target: UpstreamTarget
    /// Idle connections kept per event loop; more are closed.
    let maxIdlePerLoop: Int
    /// An idle connection is closed after this long (kube-apiserver closes idle ones after 90 s).
    let idleTimeout: TimeAmount
    /// Built once, read-only afterwards: each loop's idle list, touched only on that loop. The list
    /// holds each connection's ``UpstreamHandler`` (taking one needs no pipeline search for it).
    private let idle: [ObjectIdentifier: (loop: any EventLoop, connections: NIOLoopBoundBox<[UpstreamHandler]>)]

    /// Makes an upstream connection in place of a TLS connection to the target (the unit tests'
    /// embedded channels); it must put an ``UpstreamHandler`` of this pool last in the pipeline.
    package typealias Connector = @Sendable (_ pool: UpstreamPool, _ eventLoop: any EventLoop) -> EventLoopFuture<any Channel>
    private let connector: Connector?

    package init(
        target: UpstreamTarget, maxIdlePerLoop: Int = 64, idleTimeout: TimeAmount = .seconds(45),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, connector: Connector? = nil
    ) {
        self.connector = connector
        self.target = target
        self.maxIdlePerLoop = maxIdlePerLoop
        self.idleTimeout = idleTimeout
        var idle: [ObjectIdentifier: (loop: any EventLoop, connections: NIOLoopBoundBox<[UpstreamHandler]>)] = [:]
        for loop in group.makeIterator() {
            idle[ObjectIdentifier(loop)] = (loop, NIOLoopBoundBox.makeBoxSendingValue([], as: [UpstreamHandler].self, eventLoop: loop))
        }
        self.idle = idle
    }

    /// An idle keep-alive connection of `eventLoop`, if there is one. Call on `eventLoop`.
    func takeIdle(on eventLoop: any EventLoop) -> UpstreamHandler? {
        guard let list = idle[ObjectIdentifier(eventLoop)]?.connections else { return nil }
        while let connection = list.value.popLast() {
            if connection.isActive { return connection }
        }
        return nil
    }

    /// A new connection on `eventLoop` with an ``UpstreamHandler`` last in its pipeline.
    func connect(on eventLoop: any EventLoop) -> EventLoopFuture<any Channel> {
        if let connector { return connector(self, eventLoop) }
        let target = self.target
        return ClientBootstrap(group: eventLoop)
            // TCP level, as on the listeners (HTTPServer.bind says why the level matters).
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(try NIOSSLClientHandler(context: target.tls, serverHostname: target.serverHostname))
                    try self.addHTTPHandlers(to: channel)
                }
            }
            .connect(host: target.host, port: target.port)
    }

    /// An upstream connection's HTTP/1.1 handlers, after its TLS (or on a channel that stands for
    /// one: the in-process benchmark's, a ``Connector``'s): the request encoder and the pool's
    /// ``UpstreamHandler``, last, which reads the responses.
    package func addHTTPHandlers(to channel: any Channel) throws {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(HTTPRequestEncoder())
        try pipeline.addHandler(UpstreamHandler(pool: self))
    }

    /// Returns a connection whose last exchange completed cleanly. Called on the channel's loop.
    func release(_ connection: UpstreamHandler, channel: any Channel) {
        guard let list = idle[ObjectIdentifier(channel.eventLoop)]?.connections, list.value.count < maxIdlePerLoop else {
            return channel.close(promise: nil)
        }
        list.value.append(connection)
        connection.becameIdle(timeout: idleTimeout)
    }

    /// Removes a connection that closed while idle. Called on the channel's loop.
    func forget(_ connection: UpstreamHandler, channel: any Channel) {
        idle[ObjectIdentifier(channel.eventLoop)]?.connections.value.removeAll { $0 === connection }
    }

    /// Closes every idle connection (at shutdown), each on its own loop.
    package func closeIdle() async {
        for (loop, connections) in idle.values {
            try? await loop.submit {
                for connection in connections.value { connection.close() }
                connections.value.removeAll()
            }.get()
        }
    }
}
