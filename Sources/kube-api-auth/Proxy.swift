import ArgumentParser
import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP

struct Proxy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Authenticate Rancher tokens and forward to kube-apiserver as the Rancher user (the Authorized Cluster Endpoint for any cluster).",
        discussion: """
            An HTTPS reverse proxy in front of kube-apiserver, for clusters whose apiserver flags cannot \
            be set (EKS, AKS, GKE, imported clusters). kubectl talks to the proxy with a Rancher token \
            (Authorization: Bearer, or the WebSocket bearer protocol entry); the proxy checks it against the \
            same synced records as `serve` and forwards the request with its own service-account token and \
            Impersonate-User / Impersonate-Group for the Rancher user and groups.

            A token the records refuse (disabled, expired, wrong secret, user disabled) is answered 401; \
            when the records cannot be read yet, 503. A client's own impersonation (kubectl --as, \
            --as-group) is forwarded only when a SubjectAccessReview says the Rancher user may impersonate \
            that identity (403 otherwise). Requests without a Rancher token (service-account tokens, \
            anonymous) are passed through with the client's own credential and nothing of the proxy's \
            (--no-passthrough answers them 401 instead).

            Upstream: the cluster of --kubeconfig or $KUBECONFIG, else the in-cluster service account \
            (its token re-read as it rotates); the credential must be a bearer token, and TLS is always \
            verified. The same kubeconfig is where records are read from, unless --records-dir is given.

            Serves TLS only (HTTP/2 and HTTP/1.1 by ALPN); upgrades (exec, attach, port-forward) are \
            spliced after the upstream's 101. Probes and metrics are served on --metrics-listen (plain \
            HTTP): GET /healthcheck, /livez, /readyz, /metrics.
            """)

    @ParentCommand var root: KubeAPIAuthCommand
    var global: GlobalOptions { root.global }

    @Option(
        name: [.short, .long],
        help: ArgumentHelp(
            "Address to serve the proxy on (TLS), host:port or [ipv6]:port; repeat for several. Default: 0.0.0.0:6443.", valueName: "host:port"))
    var listen: [String] = []

    @Flag(
        inversion: .prefixedNo,
        help:
            "Forward requests that carry no Rancher token (service-account tokens, anonymous) with the client's own credential; off: answer them 401."
    )
    var passthrough = true

    @OptionGroup var service: ServiceOptions

    func validate() throws {
        try ServiceOptions.validate(listen: listen)
        guard service.tlsCertFile != nil else {
            throw ValidationError("the proxy serves TLS only: give --tls-cert-file and --tls-private-key-file")
        }
    }

    func run() async throws {
        var proxy = ProxyConfiguration(upstreamKubeconfig: global.effectiveKubeconfig)
        proxy.passThrough = passthrough
        try await ServiceOptions.run(global: global, configuration: configuration) { try await $0.runProxy(proxy) }
    }

    func configuration() throws -> ServiceConfiguration {
        var configuration = try service.configuration(global: global, listen: listen)
        if listen.isEmpty { configuration.listen = ProxyConfiguration.defaultListen }
        configuration.tls?.applicationProtocols = ["h2", "http/1.1"]
        return configuration
    }
}
