import ArgumentParser
import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import Logging
import RancherAuth

#if canImport(Glibc)
import Glibc
#endif

/// The flags `serve` and `proxy` share: where records come from, TLS, limits, timeouts and the
/// authentication core's settings.
struct ServiceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Directory of record manifests to serve (e.g. examples/records).", valueName: "dir"))
    var recordsDir: String?

    @Option(help: ArgumentHelp("How often to check the records directory for changes, in seconds.", valueName: "seconds"))
    var recordsPollInterval: Double = 1

    @Option(
        help: ArgumentHelp(
            "Seconds between lastUsedAt writes per token (each write also makes Rancher update the upstream token).",
            valueName: "seconds"))
    var lastUsedInterval: Double = 60

    @Option(
        help: ArgumentHelp(
            "File for the last-known-good records (mode 0600); used at start while the API server cannot be listed.",
            valueName: "path"))
    var snapshotFile: String?

    @Option(help: ArgumentHelp("Minimum seconds between snapshot file writes.", valueName: "seconds"))
    var snapshotInterval: Double = 10

    @Option(
        help: ArgumentHelp(
            "Serve /metrics, /livez and /readyz on this separate plain-HTTP address (serve: instead of on its listeners; proxy: the only place they are served).",
            valueName: "host:port"))
    var metricsListen: String?

    @Flag(
        inversion: .prefixedNo,
        help:
            "One info line per review decision (token name, user, result, reason, latency, source; repeats folded), and for the proxy one per request (user, verb, path, status, bytes, duration)."
    )
    var auditLog = true

    @Option(help: ArgumentHelp("PEM certificate (chain) to serve HTTPS with (serve: plain HTTP without it; proxy: required).", valueName: "path"))
    var tlsCertFile: String?

    @Option(help: ArgumentHelp("PEM private key for --tls-cert-file.", valueName: "path"))
    var tlsPrivateKeyFile: String?

    @Option(help: ArgumentHelp("How often to check the TLS files for changes (rotation), in seconds.", valueName: "seconds"))
    var tlsReloadInterval: Double = 10

    @Option(help: ArgumentHelp("Largest accepted request header block in bytes.", valueName: "bytes"))
    var maxHeaderBytes = 16 * 1024

    @Option(help: ArgumentHelp("Longest accepted bearer token in bytes; longer ones are refused unread.", valueName: "bytes"))
    var maxTokenBytes = 4096

    @Option(help: ArgumentHelp("Connections open at once; further ones are closed on accept.", valueName: "count"))
    var maxConnections = 1024

    @Option(
        help: ArgumentHelp(
            "Seconds allowed to receive a request's headers (HTTP/2: to open the first stream, and for an idle connection to close after its GOAWAY).",
            valueName: "seconds"))
    var headerTimeout = 10

    @Option(
        help: ArgumentHelp("Seconds allowed to receive a whole request (the proxy streams bodies: for it, the request head).", valueName: "seconds"))
    var readTimeout = 30

    @Option(
        help: ArgumentHelp("Seconds a keep-alive connection may wait for its next request (HTTP/2: with no stream open).", valueName: "seconds"))
    var idleTimeout = 120

    @Option(
        help: ArgumentHelp(
            "Seconds to let in-flight requests (for the proxy: watches, exec sessions) finish on SIGTERM/SIGINT before they are closed.",
            valueName: "seconds"))
    var drainTimeout = 15

    @Option(help: ArgumentHelp("Threads for scrypt verifications (each takes ~100 ms and 32 MiB).", valueName: "count"))
    var scryptWorkers = 1

    @Option(help: ArgumentHelp("scrypt verifications that may wait for a thread; beyond that reviews get 503.", valueName: "count"))
    var scryptQueue = 32

    @Option(
        help: ArgumentHelp(
            "Wrong secrets for one token within --failure-window after which its refusals are marked guessing=true in the audit "
                + "log and counted in kube_api_auth_guessed_tokens (0: off). Never a refusal: every secret is checked, so whoever "
                + "knows a token's name cannot lock its owner out.", valueName: "count"))
    var maxFailures = 10

    @Option(help: ArgumentHelp("Seconds over which --max-failures counts.", valueName: "seconds"))
    var failureWindow = 60

    @Option(
        help: ArgumentHelp(
            "Secret (in --namespace, or a manifest in --records-dir) with the emergency-access keys; without it emergency tokens are refused.",
            valueName: "name"))
    var emergencySecret = EmergencyAccess.defaultSecretName

    @Option(
        help: ArgumentHelp(
            "Verified tokens remembered (keyed by a SHA-256 of the token; reused only while its records are unchanged).", valueName: "count"))
    var verifiedCacheSize = 10_000

    static func validate(listen: [String]) throws {
        for address in listen {
            do {
                _ = try ListenAddress(parsing: address)
            } catch {
                throw ValidationError("--listen: \(error)")
            }
        }
    }

    func validate() throws {
        guard (tlsCertFile == nil) == (tlsPrivateKeyFile == nil) else {
            throw ValidationError("--tls-cert-file and --tls-private-key-file go together")
        }
        guard recordsPollInterval > 0 else { throw ValidationError("--records-poll-interval must be positive") }
        guard maxHeaderBytes >= 1024, maxTokenBytes >= 64, maxConnections >= 1 else {
            throw ValidationError("--max-header-bytes must be at least 1024, --max-token-bytes at least 64, --max-connections at least 1")
        }
        guard headerTimeout > 0, readTimeout > 0, idleTimeout > 0, drainTimeout >= 0 else {
            throw ValidationError("--header-timeout, --read-timeout and --idle-timeout must be positive, --drain-timeout not negative")
        }
        guard scryptWorkers >= 1, scryptQueue >= 0 else {
            throw ValidationError("--scrypt-workers must be at least 1 and --scrypt-queue not negative")
        }
        guard maxFailures >= 0, failureWindow > 0, verifiedCacheSize >= 0 else {
            throw ValidationError("--max-failures and --verified-cache-size must not be negative, --failure-window must be positive")
        }
        if let metricsListen {
            do {
                _ = try ListenAddress(parsing: metricsListen)
            } catch {
                throw ValidationError("--metrics-listen: \(error)")
            }
        }
        guard tlsReloadInterval > 0 else { throw ValidationError("--tls-reload-interval must be positive") }
        guard snapshotInterval > 0 else { throw ValidationError("--snapshot-interval must be positive") }
        if snapshotFile != nil, recordsDir != nil {
            throw ValidationError("--snapshot-file applies to records read from the Kubernetes API, not to --records-dir")
        }
        guard lastUsedInterval > 0 else { throw ValidationError("--last-used-interval must be positive") }
    }

    /// The flags as a ``ServiceConfiguration`` (already validated).
    func configuration(global: GlobalOptions, listen: [String]) throws -> ServiceConfiguration {
        var configuration: ServiceConfiguration
        if let recordsDir {
            configuration = ServiceConfiguration(records: .directory(path: recordsDir, pollInterval: .seconds(recordsPollInterval)))
        } else {
            configuration = ServiceConfiguration(records: .kubernetes(kubeconfig: global.effectiveKubeconfig))
        }
        configuration.namespace = global.namespace
        configuration.emergencySecretName = emergencySecret
        if !listen.isEmpty { configuration.listen = try listen.map { try ListenAddress(parsing: $0) } }
        configuration.maxHeaderBytes = maxHeaderBytes
        configuration.maxConnections = maxConnections
        configuration.headerTimeout = .seconds(headerTimeout)
        configuration.readTimeout = .seconds(readTimeout)
        configuration.idleTimeout = .seconds(idleTimeout)
        configuration.drainTimeout = .seconds(drainTimeout)
        if let tlsCertFile, let tlsPrivateKeyFile {
            configuration.tls = TLSSettings(certificateFile: tlsCertFile, privateKeyFile: tlsPrivateKeyFile)
        }
        configuration.tlsReloadInterval = .seconds(tlsReloadInterval)
        configuration.metricsListen = try metricsListen.map { try ListenAddress(parsing: $0) }
        configuration.maxTokenBytes = maxTokenBytes
        configuration.scryptWorkers = scryptWorkers
        configuration.scryptQueue = scryptQueue
        configuration.maxFailures = maxFailures
        configuration.failureWindow = .seconds(failureWindow)
        configuration.verifiedCacheSize = verifiedCacheSize
        configuration.auditLog = auditLog
        configuration.lastUsedInterval = .seconds(lastUsedInterval)
        configuration.snapshotFile = snapshotFile
        configuration.snapshotInterval = .seconds(snapshotInterval)
        return configuration
    }

    /// Builds the service from `configuration` and runs it with a door until SIGTERM or SIGINT;
    /// a configuration problem is a usage error naming the flag or file.
    static func run(
        global: GlobalOptions, configuration: () throws -> ServiceConfiguration, door: (ServiceAssembly) async throws -> Void
    ) async throws {
        // A log reader that went away must cost log lines, not the process: writes to a closed
        // stderr pipe then fail with EPIPE (which the log writer drops) instead of raising SIGPIPE.
        // NIO ignores it too, but only once it opens its first socket, after the first log lines.
        signal(SIGPIPE, SIG_IGN)
        global.bootstrapLogging()
        let logger = Logger(label: "kube-api-auth")
        let assembly: ServiceAssembly
        do {
            assembly = try ServiceAssembly(try configuration(), logger: logger)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        do {
            try await door(assembly)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        } catch {
            logger.critical("stopped", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
    }
}
