import Foundation
import Testing
import Synchronization
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The envtest assets: a directory holding `kube-apiserver`, `etcd` and `kubectl`
/// (controller-runtime's `KUBEBUILDER_ASSETS` convention; `bash ../shared/envtest/install` prints one,
/// `setup-envtest use 1.36 -p path` does elsewhere).
enum Envtest {
    static let assets: String? = {
        guard let directory = ProcessInfo.processInfo.environment["KUBEBUILDER_ASSETS"], !directory.isEmpty else { return nil }
        let complete = ["kube-apiserver", "etcd", "kubectl"].allSatisfy {
            FileManager.default.isExecutableFile(atPath: (directory as NSString).appendingPathComponent($0))
        }
        return complete ? directory : nil
    }()

    static var available: Bool { assets != nil }

    /// Why the tests against a real kube-apiserver are skipped (shown with each skipped test's name).
    static let skipReason: Comment = {
        if ProcessInfo.processInfo.environment["KUBEBUILDER_ASSETS"] == nil {
            return "KUBEBUILDER_ASSETS is unset, so there is no real kube-apiserver (export KUBEBUILDER_ASSETS=\"$(bash ../shared/envtest/install)\")"
        }
        return "KUBEBUILDER_ASSETS does not hold kube-apiserver, etcd and kubectl"
    }()

    static func tool(_ name: String) -> String { ((assets ?? "") as NSString).appendingPathComponent(name) }
}

/// The kubectl the tests use: `$KUBEBUILDER_ASSETS/kubectl` (v1.36: `auth whoami`, WebSocket exec)
/// over one on `PATH` (Debian's is 1.20); `nil` when there is none, and the tests that need it are
/// skipped by name.
let kubectlPath: String? = {
    if Envtest.available { return Envtest.tool("kubectl") }
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let candidate = "\(directory)/kubectl"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}()

/// Runs kubectl (see `kubectlPath`) to completion.
func kubectl(_ arguments: [String], input: String = "") throws -> Binary.Result {
    guard let kubectlPath else { throw ProcessError(description: "no kubectl on this machine") }
    return try runProcess(kubectlPath, arguments, input: input)
}

/// A TCP port on 127.0.0.1 that is free now and stays free until a process the test starts binds it.
///
/// A port is named before its listener exists when it goes into another program's configuration
/// (kube-apiserver's webhook file, etcd's flags). Asking the kernel for one (bind to port 0) hands
/// out a port from the ephemeral range, the same range every outgoing connection's source port
/// comes from; kube-apiserver opens dozens of connections to etcd while starting, and one of them
/// took the webhook's port before `kube-api-auth` could bind it (CI, "Address already in use").
/// So the port is chosen outside `net.ipv4.ip_local_port_range`, where no connection's source port
/// lands, checked free by binding it, and never handed out twice in one test run.
func freeLoopbackPort() throws -> Int {
    try LoopbackPorts.shared.take()
}

/// The ports `freeLoopbackPort` has handed out in this run, and the range it chooses from.
final class LoopbackPorts: Sendable {
    static let shared = LoopbackPorts()
    private let taken = Mutex<Set<Int>>([])
    /// The ports outside the kernel's ephemeral range: below it when there is room, else above it.
    let candidates: ClosedRange<Int>

    init(ephemeral: ClosedRange<Int> = LoopbackPorts.ephemeralRange()) {
        candidates = ephemeral.lowerBound > 20_000 ? 10_000...(ephemeral.lowerBound - 1) : (ephemeral.upperBound + 1)...65_535
    }

    /// `net.ipv4.ip_local_port_range` (Linux's default when it cannot be read).
    static func ephemeralRange() -> ClosedRange<Int> {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        guard bounds.count == 2, 1...65_535 ~= bounds[0], bounds[0] <= bounds[1], bounds[1] <= 65_535 else { return 32_768...60_999 }
        return bounds[0]...bounds[1]
    }

    func take() throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: candidates)
            let fresh = taken.withLock { $0.insert(port).inserted }
            if fresh, Self.bindable(port) { return port }
        }
        throw ProcessError(description: "no free loopback port in \(candidates) after 200 tries")
    }

    /// Whether a socket can bind 127.0.0.1:`port` now (without SO_REUSEADDR, so a port in any
    /// state, TIME_WAIT included, counts as in use).
    static func bindable(_ port: Int) -> Bool {
        guard let descriptor = bound(port) else { return false }
        close(descriptor)
        return true
    }

    /// A TCP socket bound to 127.0.0.1:`port` (the caller closes it), or `nil` when it cannot be.
    static func bound(_ port: Int) -> Int32? {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let bound = withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if bound { return descriptor }
        close(descriptor)
        return nil
    }
}

/// A process started in the background with its output appended to a log file. It is stopped by
/// PID (`stop`, or when the value goes away) and, through `ChildReaper`, also when the test runner
/// dies without stopping it.
final class BackgroundProcess: @unchecked Sendable {
    let name: String
    let logPath: String
    private let process = ChildProcess()

    init(name: String, executable: String, arguments: [String], logPath: String) throws {
        self.name = name
        self.logPath = logPath
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        _ = try log.seekToEnd()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "KUBECONFIG" && !$0.key.hasPrefix("KUBERNETES_") }
        process.standardOutput = .handle(log)
        process.standardError = .handle(log)
        process.standardInput = .null
        try process.run()
        try? log.close()
        ChildReaper.watch(process.processIdentifier)
    }

    var isRunning: Bool { process.isRunning }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, then SIGKILL if it has not exited within `grace` seconds.
    func stop(grace: TimeInterval = 10) {
        guard process.isRunning else { return }
        process.terminate()
        if !process.waitUntilExit(before: Date(timeIntervalSinceNow: grace)) { process.signal(SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop(grace: 2) }
}

/// Kills children of this test runner when the runner itself dies without stopping them (a crash,
/// a kill): a watcher process per child polls the runner's PID. Children are spawned from pool
/// threads, so `PR_SET_PDEATHSIG` (which follows the spawning thread) cannot be used.
enum ChildReaper {
    static func watch(_ child: Int32) {
        let runner = getpid()
        let watcher = ChildProcess()
        watcher.executableURL = URL(fileURLWithPath: "/bin/sh")
        watcher.arguments = [
            "-c", "while kill -0 \(runner) 2>/dev/null && kill -0 \(child) 2>/dev/null; do sleep 1; done; kill -9 \(child) 2>/dev/null; exit 0",
        ]
        try? watcher.run()
    }
}

/// A real control plane for one test: etcd and kube-apiserver (from `KUBEBUILDER_ASSETS`) on free
/// loopback ports, with certificates made for the run, RBAC authorization and, optionally, a token
/// webhook. `stop()` ends both and checks the apiserver's log for every secret the tests made; a
/// run that failed keeps its directory (certificates, logs) and names it in the error.
final class RealControlPlane: @unchecked Sendable {
    struct Webhook {
        /// The `--authentication-token-webhook-config-file` contents.
        var config: String
        /// `v1` or `v1beta1` (the apiserver's default).
        var version: String
        var cacheTTL = "1s"
    }

    let directory: String
    let certificates: CertificateAuthority
    let apiPort: Int
    let url: String
    /// A kubeconfig for an admin (client certificate in `system:masters`).
    let adminKubeconfig: String
    private let etcdPort: Int
    private var etcd: BackgroundProcess?
    private var apiserver: BackgroundProcess?
    private let apiserverArguments: [String]

    /// Starts a control plane whose files live in `existing` (a new directory when `nil`).
    init(in existing: String? = nil, webhook: Webhook? = nil, auditPolicy: String? = nil) async throws {
        precondition(Envtest.available, "only with KUBEBUILDER_ASSETS")
        directory = existing ?? Self.makeDirectory()
        certificates = try CertificateAuthority.controlPlane(in: directory)
        etcdPort = try freeLoopbackPort()
        let peerPort = try freeLoopbackPort()
        apiPort = try freeLoopbackPort()
        url = "https://127.0.0.1:\(apiPort)"
        etcd = try BackgroundProcess(
            name: "etcd", executable: Envtest.tool("etcd"),
            arguments: [
                "--data-dir", directory + "/etcd", "--listen-client-urls", "http://127.0.0.1:\(etcdPort)",
                "--advertise-client-urls", "http://127.0.0.1:\(etcdPort)", "--listen-peer-urls", "http://127.0.0.1:\(peerPort)",
                "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
                "--initial-cluster", "default=http://127.0.0.1:\(peerPort)", "--unsafe-no-fsync",
            ],
            logPath: directory + "/etcd.log")
        var arguments = [
            "--etcd-servers", "http://127.0.0.1:\(etcdPort)", "--bind-address", "127.0.0.1", "--secure-port", "\(apiPort)",
            "--tls-cert-file", certificates.path("apiserver.pem"), "--tls-private-key-file", certificates.path("apiserver.key"),
            "--client-ca-file", certificates.path("ca.pem"), "--authorization-mode", "RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", certificates.path("sa.pub"), "--service-account-signing-key-file", certificates.path("sa.key"),
            "--service-cluster-ip-range", "10.96.0.0/24", "--disable-admission-plugins", "ServiceAccount", "--v", "2",
        ]
        if let webhook {
            let path = directory + "/webhook.yaml"
            try webhook.config.write(toFile: path, atomically: true, encoding: .utf8)
            arguments += [
                "--authentication-token-webhook-config-file", path, "--authentication-token-webhook-version", webhook.version,
                "--authentication-token-webhook-cache-ttl", webhook.cacheTTL,
            ]
        }
        if let auditPolicy {
            let path = directory + "/audit-policy.yaml"
            try auditPolicy.write(toFile: path, atomically: true, encoding: .utf8)
            arguments += ["--audit-policy-file", path, "--audit-log-path", directory + "/audit.log"]
        }
        apiserverArguments = arguments
        adminKubeconfig = directory + "/admin.kubeconfig"
        try Self.kubeconfig(
            server: url, ca: certificates.path("ca.pem"),
            user: "client-certificate: \(certificates.path("admin.pem"))\n    client-key: \(certificates.path("admin.key"))"
        ).write(toFile: adminKubeconfig, atomically: true, encoding: .utf8)
        // The operator's credentials: tests hand this kubeconfig to kube-api-auth's CLI (`emergency
        // issue/revoke`), which runs unprivileged as everything of ours does (PodLaunch). The
        // private key openssl wrote is root's and 0600; the control plane itself runs as root.
        try PodUser.handOver(certificates.path("admin.key"))
        do {
            try await startAPIServer()
        } catch {
            throw failed(error)
        }
    }

    static func makeDirectory() -> String {
        let directory = NSTemporaryDirectory() + "kube-api-auth-envtest-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// A kubeconfig text for `server` with the given `user:` body.
    static func kubeconfig(server: String, ca: String, user: String) -> String {
        """
        apiVersion: v1
        kind: Config
        clusters:
        - name: envtest
          cluster:
            server: \(server)
            certificate-authority: \(ca)
        users:
        - name: user
          user:
            \(user)
        contexts:
        - name: envtest
          context: {cluster: envtest, user: user}
        current-context: envtest

        """
    }

    /// Writes a kubeconfig for a bearer token and returns its path.
    func kubeconfig(token: String, name: String) throws -> String {
        let path = directory + "/\(name).kubeconfig"
        try Self.kubeconfig(server: url, ca: certificates.path("ca.pem"), user: "token: \(token)")
            .write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Starts kube-apiserver (again, on the same port and etcd) and waits for `/readyz`.
    func startAPIServer() async throws {
        apiserver = try BackgroundProcess(
            name: "kube-apiserver", executable: Envtest.tool("kube-apiserver"), arguments: apiserverArguments,
            logPath: directory + "/kube-apiserver.log")
        let readyz = [
            "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", "--cacert", certificates.path("ca.pem"),
            "--cert", certificates.path("admin.pem"), "--key", certificates.path("admin.key"), url + "/readyz",
        ]
        let code = try await repeatUntil(within: .seconds(90), { try runProcess("/usr/bin/curl", readyz).stdout }) { $0 == "200" }
        guard code == "200" else {
            throw ProcessError(description: "kube-apiserver was not ready within 90 s (last /readyz: \(code))")
        }
    }

    func stopAPIServer() {
        apiserver?.stop()
    }

    var apiserverLog: String { apiserver?.log ?? "" }
    /// The error-level lines of kube-apiserver's log (klog: `E<mmdd> …`).
    var apiserverErrors: [Substring] { apiserverLog.split(separator: "\n").filter { $0.first == "E" } }
    var auditLog: String { (try? String(contentsOfFile: directory + "/audit.log", encoding: .utf8)) ?? "" }

    /// kubectl as the admin.
    @discardableResult
    func admin(_ arguments: [String], input: String = "") throws -> Binary.Result {
        try kubectl(["--kubeconfig", adminKubeconfig, "--cache-dir", directory + "/kubectl-cache"] + arguments, input: input)
    }

    /// kubectl as the admin; throws with kubectl's error output unless it succeeds.
    @discardableResult
    func adminOK(_ arguments: [String], input: String = "") throws -> String {
        let result = try admin(arguments, input: input)
        guard result.status == 0 else { throw ProcessError(description: "kubectl \(arguments.joined(separator: " ")): \(result.stderr)") }
        return result.stdout
    }

    /// kubectl with only a bearer token (no kubeconfig), as a user of the cluster would run it.
    func withToken(_ token: String, _ arguments: [String]) throws -> Binary.Result {
        try kubectl(
            [
                "--kubeconfig", "/dev/null", "--server", url, "--certificate-authority", certificates.path("ca.pem"),
                "--token", token, "--cache-dir", directory + "/kubectl-cache",
            ] + arguments)
    }

    /// Stops both processes and checks the apiserver's log against every secret and hash the tests
    /// created. The directory is removed unless `keep`.
    func stop(keep: Bool = false) -> [String] {
        apiserver?.stop()
        etcd?.stop()
        var leaks: [String] = []
        let log = apiserverLog + auditLog
        for secret in Credentials.all where log.contains(secret) {
            leaks.append("the kube-apiserver log contains a secret or hash the tests created")
        }
        if !keep { try? FileManager.default.removeItem(atPath: directory) }
        return leaks
    }

    /// Wraps `error` with where the run's logs are kept and the end of the apiserver's log.
    func failed(_ error: any Error) -> any Error {
        _ = stop(keep: true)
        let tail = apiserverLog.split(separator: "\n").suffix(40).joined(separator: "\n")
        return ProcessError(description: "\(error)\n(control plane logs kept in \(directory); end of kube-apiserver's log:)\n\(tail)")
    }

    deinit {
        apiserver?.stop(grace: 2)
        etcd?.stop(grace: 2)
    }
}

/// A throwaway certificate authority made with openssl in `directory`: `ca.pem`/`ca.key`, and
/// `<name>.pem`/`<name>.key` for each certificate it issues.
struct CertificateAuthority {
    let directory: String

    init(in directory: String) throws {
        self.directory = directory
        try openssl(["req", "-x509"] + Self.ec + ["-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "1", "-subj", "/CN=test-ca"])
    }

    /// For a control plane: the apiserver's serving certificate for 127.0.0.1, an admin client
    /// certificate in `system:masters`, and the service-account signing key pair (`sa.key`, `sa.pub`).
    static func controlPlane(in directory: String) throws -> CertificateAuthority {
        let authority = try CertificateAuthority(in: directory)
        try authority.issue("apiserver", subject: "/CN=kube-apiserver", extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost")
        try authority.issue("admin", subject: "/O=system:masters/CN=envtest-admin", extensions: "extendedKeyUsage=clientAuth")
        try authority.openssl(["genrsa", "-out", authority.path("sa.key"), "2048"])
        try authority.openssl(["rsa", "-in", authority.path("sa.key"), "-pubout", "-out", authority.path("sa.pub")])
        return authority
    }

    private static let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    /// `<name>.pem` and `<name>.key` signed by the CA, with `extensions` (an openssl extension line).
    func issue(_ name: String, subject: String, extensions: String) throws {
        try openssl(["req"] + Self.ec + ["-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", subject])
        try "\(extensions)\n".write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"), "-CAcreateserial",
            "-out", path("\(name).pem"), "-days", "1", "-extfile", path("\(name).ext"),
        ])
    }

    private func openssl(_ arguments: [String]) throws {
        let result = try runProcess("/usr/bin/openssl", arguments)
        guard result.status == 0 else { throw ProcessError(description: "openssl \(arguments.first ?? ""): \(result.stderr)") }
    }
}
