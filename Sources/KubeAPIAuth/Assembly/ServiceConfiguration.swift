import RancherAuth
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import KubeAPIAuthHTTP
import KubeAPIAuthCore

/// Everything a running kube-api-auth is made from, as one value: the executable maps its flags to
/// it, and ``ServiceAssembly`` turns it into running services. Defaults are the Go service's (and
/// the documented ones of the flags).
public struct ServiceConfiguration: Sendable {
    /// Where the records come from.
    public enum Records: Sendable {
        /// The Kubernetes API: the cluster of `kubeconfig` (a path), else the in-cluster service
        /// account. ClusterAuthTokens, ClusterUserAttributes, Secrets and the refresh ConfigMap of
        /// the namespace are listed and watched; usage and migrations are written back.
        case kubernetes(kubeconfig: String?)
        /// A directory of the same manifests, polled for changes; read-only.
        case directory(path: String, pollInterval: Duration)
    }

    public var records: Records
    public var namespace = "cattle-system"
    /// The Secret that turns emergency access on (``EmergencyAccess``).
    public var emergencySecretName = EmergencyAccess.defaultSecretName

    // Listeners and their limits.
    public var listen: [ListenAddress] = ServerConfiguration.defaultListen
    public var maxBodyBytes = 64 * 1024
    public var maxHeaderBytes = 16 * 1024
    public var maxConnections = 1024
    public var headerTimeout: Duration = .seconds(10)
    public var readTimeout: Duration = .seconds(30)
    public var idleTimeout: Duration = .seconds(120)
    public var drainTimeout: Duration = .seconds(15)
    /// Serve HTTPS (and require client certificates when its `clientCAFile` is set).
    public var tls: TLSSettings?
    public var tlsReloadInterval: Duration = .seconds(10)
    /// A separate listener for `/metrics`, `/livez` and `/readyz`; `nil` serves them on the main ones.
    public var metricsListen: ListenAddress?

    // The authentication core.
    public var maxTokenBytes = 4096
    public var scryptWorkers = 1
    public var scryptQueue = 32
    public var maxFailures = 10
    public var failureWindow: Duration = .seconds(60)
    public var verifiedCacheSize = 10_000
    public var auditLog = true

    // Kubernetes source only.
    public var lastUsedInterval: Duration = .seconds(60)
    public var snapshotFile: String?
    public var snapshotInterval: Duration = .seconds(10)

    public init(records: Records) {
        self.records = records
    }
}

/// What only the authenticating proxy (`kube-api-auth proxy`) needs.
public struct ProxyConfiguration: Sendable {
    /// The upstream kube-apiserver: this kubeconfig (a path), else the in-cluster service account.
    public var upstreamKubeconfig: String?
    /// Forward requests without a token of ours with the client's own credential (on), or answer
    /// them `401` (off).
    public var passThrough = true
    /// Idle keep-alive connections to the upstream kept per event loop.
    public var maxIdleUpstreamConnections = 64

    public init(upstreamKubeconfig: String? = nil) {
        self.upstreamKubeconfig = upstreamKubeconfig
    }

    /// The proxy's listener when none is given: every IPv4 address (TLS is required).
    public static let defaultListen = [ListenAddress(host: "0.0.0.0", port: 6443)]
}
