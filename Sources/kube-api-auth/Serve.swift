import ArgumentParser
import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import Logging
import RancherAuth

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer TokenReviews on the listen addresses.",
        discussion: """
            Endpoints: POST /v1/authenticate (TokenReview, v1 or v1beta1, answered in the request's \
            version), POST /apis/authentication.k8s.io/v1/selfsubjectreviews (Authorization: Bearer; \
            what kubectl auth whoami sends), GET /healthcheck, /livez, /readyz.

            Records come from the Kubernetes API (as with the Go service): the cluster of --kubeconfig or \
            $KUBECONFIG, else the in-cluster service account; ClusterAuthTokens, ClusterUserAttributes, \
            Secrets, the refresh ConfigMap and the emergency Secret of --namespace are listed and watched, \
            and reviews are answered 503 until all five have synced. lastUsedAt, needsRefresh and legacy-hash migration \
            are written in the background.

            With --records-dir they come from a directory of the same manifests (YAML or JSON) instead, \
            reloaded when files change; a file with any problem contributes no records (fail closed) and \
            is reported by name and line.
            """)

    @ParentCommand var root: KubeAPIAuthCommand
    var global: GlobalOptions { root.global }

    @Option(
        name: [.short, .long],
        help: ArgumentHelp(
            "Address to listen on, host:port or [ipv6]:port; repeat for several. Default: $CATTLE_LISTEN, else 127.0.0.1:6440 and [::1]:6440.",
            valueName: "host:port"))
    var listen: [String] = []

    @Option(help: ArgumentHelp("Require client certificates signed by this PEM CA bundle (needs TLS).", valueName: "path"))
    var clientCaFile: String?

    @Option(help: ArgumentHelp("Largest accepted request body in bytes; larger bodies get 413.", valueName: "bytes"))
    var maxBodyBytes = 64 * 1024

    @OptionGroup var service: ServiceOptions

    /// `--listen`, else `$CATTLE_LISTEN` (empty: the defaults).
    var effectiveListen: [String] {
        if !listen.isEmpty { return listen }
        return EnvironmentConfiguration.current.listen.map { [$0] } ?? []
    }

    func validate() throws {
        try ServiceOptions.validate(listen: listen)
        if listen.isEmpty, let variable = EnvironmentConfiguration.current.listen {
            do {
                _ = try ListenAddress(parsing: variable)
            } catch {
                throw ValidationError("CATTLE_LISTEN: \(error)")
            }
        }
        guard clientCaFile == nil || service.tlsCertFile != nil else {
            throw ValidationError("--client-ca-file needs --tls-cert-file and --tls-private-key-file")
        }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
    }

    func run() async throws {
        try await ServiceOptions.run(global: global, configuration: configuration) { try await $0.runWebhook() }
    }

    /// The flags as a ``ServiceConfiguration`` (already validated by ``validate()``).
    func configuration() throws -> ServiceConfiguration {
        var configuration = try service.configuration(global: global, listen: effectiveListen)
        configuration.maxBodyBytes = maxBodyBytes
        if let clientCaFile { configuration.tls?.clientCAFile = clientCaFile }
        return configuration
    }
}
