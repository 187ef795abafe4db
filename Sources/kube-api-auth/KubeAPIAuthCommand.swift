import ArgumentParser
import KubeAPIAuth
import KubeAPIAuthCore
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

            Without a subcommand it serves (as the Go service's newer releases do). The environment \
            those releases are configured with is read too, and a flag wins over it: CATTLE_DEBUG or \
            RANCHER_DEBUG (true/1: --debug), KUBECONFIG (--kubeconfig), CATTLE_NAMESPACE (--namespace), \
            CATTLE_LISTEN (serve --listen).
            """,
        version: "0.1.0",
        subcommands: [
            Serve.self, Proxy.self, HashCommand.self, VerifyCommand.self, TokenCommand.self, EmergencyCommand.self, KubeconfigCommand.self,
            DiagnoseCommand.self,
        ],
        defaultSubcommand: Serve.self)

    @OptionGroup var global: GlobalOptions

    /// Parses the command line as the Go service's CLI library (urfave/cli v1) would read it too.
    static func main() async {
        await main(GoCLIArguments.normalize(Array(CommandLine.arguments.dropFirst())))
    }
}

/// The Go service's command-line forms that swift-argument-parser does not read by itself:
/// Go's flag package takes `-name` as well as `--name` (`-debug`, `-kubeconfig=…`, `serve -listen …`),
/// and urfave/cli adds `-v` for `--version` and `h` for `help`.
enum GoCLIArguments {
    /// The Go service's long flags (global ones and `serve --listen`), which may come with one dash.
    static let goLongFlags: Set<String> = ["debug", "kubeconfig", "namespace", "listen", "version", "help"]
    /// Global options that take a value, to find the subcommand after them.
    static let globalOptionsWithValue: Set<String> = ["--kubeconfig", "--namespace", "--log-format"]

    static func normalize(_ arguments: [String]) -> [String] {
        var result: [String] = []
        var inSubcommand = false
        var expectsValue = false
        for argument in arguments {
            if argument == "--" || expectsValue {
                result.append(argument)
                expectsValue = false
                continue
            }
            var normalized = argument
            if argument.hasPrefix("-"), !argument.hasPrefix("--") {
                let name = argument.dropFirst().prefix { $0 != "=" }
                if goLongFlags.contains(String(name)) { normalized = "-" + argument }
                if argument == "-v", !inSubcommand { normalized = "--version" }
            }
            if !inSubcommand {
                if normalized.hasPrefix("-") {
                    expectsValue = globalOptionsWithValue.contains(normalized)
                } else {
                    inSubcommand = true
                    if normalized == "h" { normalized = "help" }
                }
            }
            result.append(normalized)
        }
        return result
    }
}

/// Options of the Go service that precede the subcommand.
struct GlobalOptions: ParsableArguments {
    @Flag(help: "Log at debug level (never secrets). Also on when $CATTLE_DEBUG or $RANCHER_DEBUG is true.")
    var debug = false

    @Option(help: ArgumentHelp("Log format: text (logfmt, for people) or json (for collectors).", valueName: "format"))
    var logFormat: LineLogHandler.Format = .text

    @Option(
        help: ArgumentHelp(
            "Kubeconfig for reading records from a cluster (default: $KUBECONFIG, else in-cluster).",
            valueName: "path"))
    var kubeconfig: String?

    /// What `--namespace` was given as (the effective value is ``namespace``).
    @Option(
        name: .customLong("namespace"),
        help: ArgumentHelp(
            "Namespace of the ClusterAuthToken, ClusterUserAttribute, Secret and ConfigMap records (default: $CATTLE_NAMESPACE, else cattle-system).",
            valueName: "name"))
    var namespaceFlag: String?

    /// `--namespace`, else `$CATTLE_NAMESPACE`, else `cattle-system`.
    var namespace: String { EnvironmentConfiguration.current.value(flag: namespaceFlag, variable: "CATTLE_NAMESPACE") ?? "cattle-system" }

    /// `--debug`, or `$CATTLE_DEBUG` / `$RANCHER_DEBUG` true as Go's `strconv.ParseBool` reads it.
    var effectiveDebug: Bool { debug || EnvironmentConfiguration.current.debug }

    /// `--kubeconfig`, else `$KUBECONFIG`, as the Go service reads it.
    var effectiveKubeconfig: String? { EnvironmentConfiguration.current.value(flag: kubeconfig, variable: "KUBECONFIG") }

    func bootstrapLogging() {
        let level: Logger.Level = effectiveDebug ? .debug : .info
        let format = logFormat
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level, format: format) }
    }
}

extension LineLogHandler.Format: ExpressibleByArgument {}
