import ArgumentParser
import KubeAPIAuth
import Logging

@main
struct KubeAPIAuthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kube-api-auth",
        abstract: "Rancher Authorized Cluster Endpoint token authenticator (TokenReview webhook).",
        discussion: """
            kube-apiserver sends each bearer token it does not know to this service as a TokenReview \
            (POST /v1/authenticate). The service checks Rancher tokens (<name>:<secret> or \
            ext/<name>:<secret>) against ClusterAuthToken, ClusterUserAttribute and hash Secret records \
            and answers with the Rancher user and groups, so kubectl keeps working when Rancher is down.

            Global options go before the subcommand, as with the Go service: \
            kube-api-auth --debug serve --records-dir examples/records
            """,
        version: "0.1.0",
        subcommands: [Serve.self, HashCommand.self, VerifyCommand.self, TokenCommand.self],
        defaultSubcommand: nil)

    @OptionGroup var global: GlobalOptions
}

/// Options of the Go service that precede the subcommand.
struct GlobalOptions: ParsableArguments {
    @Flag(help: "Log at debug level (never secrets).")
    var debug = false

    @Option(help: ArgumentHelp("Log format: text (logfmt, for people) or json (for collectors).", valueName: "format"))
    var logFormat: LineLogHandler.Format = .text

    @Option(
        help: ArgumentHelp(
            "Kubeconfig for reading records from a cluster (default: $KUBECONFIG, else in-cluster).",
            valueName: "path"))
    var kubeconfig: String?

    @Option(help: ArgumentHelp("Namespace of the ClusterAuthToken, ClusterUserAttribute, Secret and ConfigMap records.", valueName: "name"))
    var namespace = "cattle-system"

    /// `--kubeconfig`, else `$KUBECONFIG`, as the Go service reads it.
    var effectiveKubeconfig: String? {
        if let kubeconfig, !kubeconfig.isEmpty { return kubeconfig }
        if let environment = ProcessEnvironment.value("KUBECONFIG"), !environment.isEmpty { return environment }
        return nil
    }

    func bootstrapLogging() {
        let level: Logger.Level = debug ? .debug : .info
        let format = logFormat
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level, format: format) }
    }
}

extension LineLogHandler.Format: ExpressibleByArgument {}
