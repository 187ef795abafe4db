import ArgumentParser
import KubeAPIAuth
import KubeAPIAuthCore
import Logging
import RancherAuth

/// `kube-api-auth diagnose [token NAME]`: why a token or the sync fails, read-only.
struct DiagnoseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diagnose",
        abstract: "Say why tokens are refused or records are missing: the cluster, the service's rights, the records, one token.",
        discussion: """
            Read-only, through --kubeconfig / $KUBECONFIG or the in-cluster service account. Checks that \
            Rancher's record kinds are served; asks the authorizer (SubjectAccessReviews, so the caller needs \
            `create subjectaccessreviews`) whether the service's service account has every right it needs, \
            naming the RBAC rule for each missing one; reads the emergency Secret (public keys and settings \
            only); and takes a census of the records: counts, and every record that cannot authenticate \
            with its reason (no hash, a hash that does not parse or has an unknown version, no user, an \
            unreadable expiry or object, a name Rancher would not write), disabled and expired tokens, and \
            hash Secrets and users nothing refers to.

            `diagnose token NAME` adds the whole chain of one token, by its name (the part before the `:`), \
            never its secret: record, expiry, hash and its algorithm, user and groups, and the answer the \
            service would give for the correct secret.

            Nothing secret is printed. Exit status: 0 no problems, 1 problems found, 2 the cluster could \
            not be asked.
            """,
        subcommands: [Cluster.self, Token.self],
        defaultSubcommand: Cluster.self)

    struct Options: ParsableArguments {
        @Option(
            name: [.customShort("o"), .long],
            help: "Output format: text (for people) or json (for scripts).")
        var output: OutputFormat = .text

        @Option(
            help: ArgumentHelp(
                "The service account whose rights are checked: NAME in --namespace, or NAMESPACE:NAME. Default: kube-api-auth (serve), kube-api-auth-proxy (proxy).",
                valueName: "name"))
        var serviceAccount: String?

        @Option(help: "Which door's rights to check: webhook (serve) or proxy (adds impersonation and SubjectAccessReviews).")
        var door: DiagnoseConfiguration.Door = .webhook

        @Option(help: ArgumentHelp("Name of the emergency-access Secret in --namespace.", valueName: "name"))
        var emergencySecret = EmergencyAccess.defaultSecretName
    }

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    static func run(global: GlobalOptions, options: Options, tokenName: String?) async throws {
        global.bootstrapLogging()
        let account = options.serviceAccount ?? (options.door == .proxy ? "kube-api-auth-proxy" : "kube-api-auth")
        let configuration = DiagnoseConfiguration(
            kubeconfig: global.effectiveKubeconfig, namespace: global.namespace, serviceAccount: account, door: options.door,
            emergencySecretName: options.emergencySecret, tokenName: tokenName)
        let report: DiagnosisReport
        do {
            report = try await Diagnosis.run(configuration, logger: Logger(label: "kube-api-auth"), now: SystemClock().now())
        } catch {
            ProcessEnvironment.printError("kube-api-auth diagnose: \(error)")
            throw ExitCode(2)
        }
        print(options.output == .json ? report.json : report.text, terminator: "")
        if report.hasProblems { throw ExitCode(1) }
    }

    struct Cluster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The cluster, the service account's rights, the emergency Secret and the records census (the default).")

        @ParentCommand var root: KubeAPIAuthCommand
        @OptionGroup var options: Options

        func run() async throws {
            try await DiagnoseCommand.run(global: root.global, options: options, tokenName: nil)
        }
    }

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Everything above, and the whole chain of one token by its name.")

        @ParentCommand var root: KubeAPIAuthCommand
        @OptionGroup var options: Options

        @Argument(help: ArgumentHelp("The token's name: the part before the `:` (an ext/ prefix is dropped). Never its secret.", valueName: "name"))
        var name: String

        mutating func validate() throws {
            if name.hasPrefix("ext/") { name.removeFirst(4) }
            // Someone pasted the whole bearer token: refuse it without echoing the secret.
            guard !name.contains(":") else {
                throw ValidationError("give the token's name only (the part before the `:`), never its secret")
            }
        }

        func run() async throws {
            try await DiagnoseCommand.run(global: root.global, options: options, tokenName: name)
        }
    }
}

extension DiagnoseConfiguration.Door: ExpressibleByArgument {}
