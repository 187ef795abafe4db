import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization
import KubeAPIAuthCore

/// TLS for listeners reachable beyond loopback, named as kube-apiserver names them.
public struct TLSSettings: Sendable {
    public var certificateFile: String
    public var privateKeyFile: String
    /// When set, clients must present a certificate signed by this CA (so only kube-apiserver,
    /// holding the webhook kubeconfig's client certificate, can call).
    public var clientCAFile: String?
    /// ALPN protocols offered, most preferred first (the proxy offers `h2` and `http/1.1`).
    public var applicationProtocols: [String] = []

    public init(certificateFile: String, privateKeyFile: String, clientCAFile: String? = nil) {
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.clientCAFile = clientCAFile
    }

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// How long closing a TLS connection waits for the client's close_notify.
    public static let closeNotifyWait: TimeAmount = .milliseconds(500)

    /// Reads the files and builds a server context: TLS 1.2 or newer with NIOSSL's default
    /// (forward-secret AEAD) cipher suites.
    public func makeContext() throws(LoadError) -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
        } catch {
            throw LoadError(description: "--tls-cert-file \(certificateFile): cannot read a PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else { throw LoadError(description: "--tls-cert-file \(certificateFile): no certificate in the file") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: privateKeyFile, format: .pem)
        } catch {
            throw LoadError(description: "--tls-private-key-file \(privateKeyFile): cannot read a PEM private key (\(error))")
        }
        var configuration: TLSConfiguration
        if let clientCAFile {
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMFile(clientCAFile)
            } catch {
                throw LoadError(description: "--client-ca-file \(clientCAFile): cannot read PEM certificates (\(error))")
            }
            configuration = .makeServerConfigurationWithMTLS(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key),
                trustRoots: .certificates(roots))
            // Client certificates carry no host name to check; the CA is what is trusted.
            configuration.certificateVerification = .noHostnameVerification
        } else {
            configuration = .makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        }
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = applicationProtocols
        // Closing a connection waits at most this long for the client's close_notify. NIOSSL's
        // default is 5 s, and a client that stopped reading never sends one: closed one after
        // another at the drain timeout, three such watch clients once kept the proxy 15 s past it
        // (beyond the pod's termination grace period).
        configuration.shutdownTimeout = Self.closeNotifyWait
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw LoadError(
                description: "--tls-cert-file/--tls-private-key-file: the certificate and key do not form a usable TLS identity (\(error))")
        }
    }
}

/// The serving TLS context, replaceable while connections keep being accepted: each new
/// connection uses the context current when it arrives.
public final class TLSContextBox: Sendable {
    private let context: Mutex<NIOSSLContext>

    public init(_ context: NIOSSLContext) {
        self.context = Mutex(context)
    }

    public var current: NIOSSLContext { context.withLock { $0 } }

    func replace(with context: NIOSSLContext) {
        self.context.withLock { $0 = context }
    }
}

/// Reloads the certificate, key and client CA when their files change (cert-manager or kubelet
/// rotation), without a restart. A change that does not load keeps the previous identity serving.
public final class TLSReloader: Service {
    let settings: TLSSettings
    let box: TLSContextBox
    let interval: Duration
    let logger: Logger

    public init(settings: TLSSettings, box: TLSContextBox, interval: Duration, logger: Logger) {
        self.settings = settings
        self.box = box
        self.interval = interval
        self.logger = logger
    }

    private var files: [String] { [settings.certificateFile, settings.privateKeyFile] + (settings.clientCAFile.map { [$0] } ?? []) }

    public func run() async throws {
        let initial = files.map(FileFingerprint.of)
        do {
            try await cancelWhenGracefulShutdown {
                var fingerprint = initial
                while !Task.isCancelled {
                    try await Task.sleep(for: self.interval)
                    let current = self.files.map(FileFingerprint.of)
                    guard current != fingerprint else { continue }
                    fingerprint = current
                    do {
                        self.box.replace(with: try self.settings.makeContext())
                        self.logger.info("TLS certificate reloaded", metadata: ["certificate": "\(self.settings.certificateFile)"])
                    } catch {
                        self.logger.error("TLS files changed but cannot be used; keeping the previous ones", metadata: ["problem": "\(error)"])
                    }
                }
            }
        } catch is CancellationError {
            return
        }
    }
}
