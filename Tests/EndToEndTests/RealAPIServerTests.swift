import Foundation
import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthProxy
import KubeClient
import Logging
import Testing
import TestSupport

/// A real control plane with the records bootstrapped as Rancher's cluster agent leaves them (CRDs,
/// `cattle-system`, the shipped `manifests/rbac.yaml`) and the real `kube-api-auth` binary as its
/// token webhook, configured from the shipped `manifests/webhook/` files. The service syncs as the
/// `kube-api-auth` ServiceAccount, so every scenario also proves that the least-privilege Role suffices.
final class WebhookCluster: @unchecked Sendable {
    let plane: RealControlPlane
    let webhookPort: Int
    let mutualTLS: Bool
    /// A kubeconfig with a token of the `kube-api-auth` ServiceAccount.
    let serviceKubeconfig: String
    private var services: [ServiceProcess] = []

    private init(plane: RealControlPlane, webhookPort: Int, mutualTLS: Bool) throws {
        self.plane = plane
        self.webhookPort = webhookPort
        self.mutualTLS = mutualTLS
        try plane.adminOK(["create", "namespace", "cattle-system"])
        try plane.adminOK(["apply", "-f", Binary.repositoryRoot.appendingPathComponent("manifests/crds.yaml").path])
        try plane.adminOK([
            "wait", "--for", "condition=established", "--timeout", "60s",
            "crd/clusterauthtokens.cluster.cattle.io", "crd/clusteruserattributes.cluster.cattle.io",
        ])
        try plane.adminOK(["apply", "-f", Binary.repositoryRoot.appendingPathComponent("manifests/rbac.yaml").path])
        let token = try plane.adminOK(["create", "token", "kube-api-auth", "-n", "cattle-system", "--duration", "2h"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        Credentials.register(secret: token)
        serviceKubeconfig = try plane.kubeconfig(token: token, name: "kube-api-auth")
    }

    /// Runs `body` against a fresh cluster whose kube-apiserver calls the webhook in `version`; stops
    /// everything afterwards, checks every log for secrets, and keeps the logs of a failed run.
    static func run(
        version: String = "v1", mutualTLS: Bool = false, startService: Bool = true, auditPolicy: String? = nil,
        _ body: (WebhookCluster) async throws -> Void
    ) async throws {
        let webhookPort = try freeLoopbackPort()
        let manifest = mutualTLS ? "kube-api-authn-webhook-mtls.yaml" : "kube-api-authn-webhook.yaml"
        let shipped = try String(
            contentsOf: Binary.repositoryRoot.appendingPathComponent("manifests/webhook/" + manifest), encoding: .utf8)
        let plane: RealControlPlane
        if mutualTLS {
            // The certificate paths of the shipped file, pointed at certificates made for the run.
            let directory = RealControlPlane.makeDirectory()
            let pkiDirectory = directory + "/webhook-pki"
            try FileManager.default.createDirectory(atPath: pkiDirectory, withIntermediateDirectories: true)
            let pki = try CertificateAuthority(in: pkiDirectory)
            try pki.issue("webhook", subject: "/CN=kube-api-auth", extensions: "subjectAltName=IP:127.0.0.1")
            try pki.issue("apiserver-client", subject: "/CN=kube-apiserver", extensions: "extendedKeyUsage=clientAuth")
            let config = try rewrite(
                shipped,
                [
                    "127.0.0.1:6440": "127.0.0.1:\(webhookPort)",
                    "/etc/kubernetes/kube-api-auth/serving-ca.pem": pki.path("ca.pem"),
                    "/etc/kubernetes/kube-api-auth/apiserver-client.pem": pki.path("apiserver-client.pem"),
                    "/etc/kubernetes/kube-api-auth/apiserver-client.key": pki.path("apiserver-client.key"),
                ])
            plane = try await RealControlPlane(in: directory, webhook: .init(config: config, version: version), auditPolicy: auditPolicy)
        } else {
            let config = try rewrite(shipped, ["127.0.0.1:6440": "127.0.0.1:\(webhookPort)"])
            plane = try await RealControlPlane(webhook: .init(config: config, version: version), auditPolicy: auditPolicy)
        }
        let cluster: WebhookCluster
        do {
            cluster = try WebhookCluster(plane: plane, webhookPort: webhookPort, mutualTLS: mutualTLS)
            if startService { try cluster.waitUntilSynced(try cluster.startService()) }
            try await body(cluster)
        } catch {
            throw plane.failed(error)
        }
        try cluster.stopServices()
        for leak in plane.stop() { Issue.record(Comment(rawValue: leak)) }
    }

    /// `text` with each key replaced by its value; every key must occur.
    private static func rewrite(_ text: String, _ replacements: [String: String]) throws -> String {
        var result = text
        for (from, to) in replacements {
            guard result.contains(from) else { throw ProcessError(description: "the shipped webhook file no longer holds \(from)") }
            result = result.replacingOccurrences(of: from, with: to)
        }
        return result
    }

    /// Starts `kube-api-auth serve` on the webhook's port, syncing as the ServiceAccount.
    func startService(_ extra: [String] = [], kubeconfig: String? = nil) throws -> ServiceProcess {
        var tls: [String] = []
        if mutualTLS {
            let pki = plane.directory + "/webhook-pki/"
            tls = [
                "--tls-cert-file", pki + "webhook.pem", "--tls-private-key-file", pki + "webhook.key", "--client-ca-file", pki + "ca.pem",
            ]
        }
        let service = try ServiceProcess(
            global: ["--debug", "--kubeconfig", kubeconfig ?? serviceKubeconfig],
            serve: ["--last-used-interval", "0.2"] + tls + extra, listen: ["127.0.0.1:\(webhookPort)"])
        services.append(service)
        return service
    }

    /// Everything the services started so far have logged.
    var serviceLog: String { services.map(\.output).joined(separator: "\n") }

    /// `serviceLog` once `accept` holds, `nil` if it does not within `within`. A line logged as an
    /// answer goes out reaches the test through a pipe, possibly after the answer: a log check
    /// waits for it.
    func serviceLog(within: Duration, _ accept: (String) -> Bool) async throws -> String? {
        let log = try await repeatUntil(within: within, { serviceLog }, accept)
        return accept(log) ? log : nil
    }

    /// Includes a service started elsewhere (the proxy) in `serviceLog` and `stopServices()`.
    func adopt(_ service: ServiceProcess) {
        services.append(service)
    }

    /// Stops every service started so far (each must exit 0; its log is checked for secrets).
    func stopServices() throws {
        for service in services { #expect(try service.stop() == 0) }
        services.removeAll()
    }

    func waitUntilSynced(_ service: ServiceProcess, since mark: Int = 0, timeout: TimeInterval = 30) throws {
        try service.waitForLog(containing: "msg=\"records synced from the API; answering reviews\"", since: mark, timeout: timeout)
    }

    /// `kube-api-auth token create … --output - | kubectl apply -f -`; returns the bearer token.
    func mint(user: String, groups: [String] = []) throws -> String {
        let (bearer, manifests) = try mintedManifests(user: user, groups: groups)
        try plane.adminOK(["apply", "-f", "-"], input: manifests)
        return bearer
    }

    /// `kube-api-auth token create … --output -`: the bearer token and the three manifests, not
    /// applied (the secret and hash are registered for the log checks).
    func mintedManifests(user: String, groups: [String] = []) throws -> (bearer: String, manifests: String) {
        let minted = try Binary.run(["token", "create", "--user", user, "--output", "-"] + groups.flatMap { ["--group", $0] })
        guard minted.status == 0, let bearer = minted.stderr.split(separator: "\n").last.map(String.init) else {
            throw ProcessError(description: "token create: \(minted.stderr)")
        }
        Credentials.register(secret: String(bearer.drop { $0 != ":" }.dropFirst()))
        for line in minted.stdout.split(separator: "\n") where line.contains("hash: \"") {
            let value = line.split(separator: "\"").dropFirst().first.map(String.init) ?? ""
            if let decoded = Data(base64Encoded: value) { Credentials.register(hash: String(decoding: decoded, as: UTF8.self)) }
        }
        return (bearer, minted.stdout)
    }

    struct Identity: Equatable {
        var username: String
        var groups: Set<String>

        /// The identity `kubectl auth whoami -o json` printed, or its error output.
        static func whoami(_ result: Binary.Result) -> Result<Identity, ProcessError> {
            guard result.status == 0 else { return .failure(ProcessError(description: result.stderr)) }
            guard let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
                let info = (object["status"] as? [String: Any])?["userInfo"] as? [String: Any],
                let username = info["username"] as? String
            else { return .failure(ProcessError(description: "unexpected whoami output: \(result.stdout)")) }
            return .success(Identity(username: username, groups: Set(info["groups"] as? [String] ?? [])))
        }
    }

    /// `kubectl auth whoami -o json` with `token`: the identity, or kubectl's error output.
    func whoami(_ token: String) throws -> Result<Identity, ProcessError> {
        Identity.whoami(try plane.withToken(token, ["auth", "whoami", "-o", "json"]))
    }

    /// Asks `whoami` until `accept` likes the result, for at most `within`.
    func whoamiUntil(
        _ token: String, within: Duration, _ accept: (Result<Identity, ProcessError>) -> Bool
    ) async throws -> Result<Identity, ProcessError> {
        var last: Result<Identity, ProcessError> = .failure(ProcessError(description: "not asked"))
        _ = try await repeatUntil(
            within: within,
            {
                last = try whoami(token)
                return accept(last) ? "yes" : "no"
            }
        ) { $0 == "yes" }
        return last
    }

    /// A TokenReview posted to the webhook directly (over TLS with a client certificate under mTLS).
    func directReview(_ token: String) throws -> String {
        var arguments = ["-d", review(token, apiVersion: "authentication.k8s.io/v1")]
        if mutualTLS {
            let pki = plane.directory + "/webhook-pki/"
            arguments += ["--cacert", pki + "ca.pem", "--cert", pki + "apiserver-client.pem", "--key", pki + "apiserver-client.key"]
        }
        return try curl(["-w", "\n%{http_code}"] + arguments + ["\(mutualTLS ? "https" : "http")://127.0.0.1:\(webhookPort)/v1/authenticate"])
    }
}

/// Asks `whoami` for each token until it is refused (the `groups` one: until it shows only
/// `g://new`), for at most `within`: the kinds still pending and when each one was reached.
func awaitRevocations(
    _ tokens: [String: String], since start: ContinuousClock.Instant, within: Duration,
    whoami: (String) throws -> Result<WebhookCluster.Identity, ProcessError>
) async throws -> (pending: Set<String>, reached: [String: Duration]) {
    var pending = Set(tokens.keys)
    var reached: [String: Duration] = [:]
    _ = try await repeatUntil(
        within: within,
        {
            for kind in pending.sorted() {
                let answer = try whoami(tokens[kind]!)
                let done = kind == "groups" ? answer.identity?.groups == ["g://new", "system:authenticated"] : answer.unauthorized
                if done {
                    pending.remove(kind)
                    reached[kind] = ContinuousClock.now - start
                }
            }
            return pending.isEmpty ? "all" : "\(pending)"
        }
    ) { $0 == "all" }
    return (pending, reached)
}

extension Result where Failure == ProcessError {
    var identity: Success? { try? get() }
    var unauthorized: Bool {
        if case .failure(let error) = self { return error.description.contains("Unauthorized") }
        return false
    }
}

@Suite(
    "Against a real kube-apiserver (KUBEBUILDER_ASSETS): the webhook contract, RBAC boundaries and sync",
    .serialized, .enabled(if: Envtest.available, Envtest.skipReason))
struct RealAPIServerTests {
    @Test(
        "whoami through kube-apiserver shows the Rancher user and groups; RBAC on one group authorizes, the rest is Forbidden; ext/ works",
        arguments: ["v1", "v1beta1"])
    func identityAndRBAC(version: String) async throws {
        try await WebhookCluster.run(version: version) { cluster in
            let bearer = try cluster.mint(user: "u-alice", groups: ["github_team://viewers", "github_org://acme"])
            let identity = try cluster.whoami(bearer).get()
            #expect(identity == .init(username: "u-alice", groups: ["github_team://viewers", "github_org://acme", "system:authenticated"]))
            #expect(try cluster.whoami("ext/" + bearer).identity == identity)
            // The kubeconfig a user would be handed for the endpoint (token on standard input).
            let printed = try Binary.run(
                ["kubeconfig", "--server", cluster.plane.url, "--certificate-authority", cluster.plane.certificates.path("ca.pem")],
                input: bearer + "\n")
            #expect(printed.status == 0, "\(printed.stderr)")
            let kubeconfig = cluster.plane.directory + "/ace.kubeconfig"
            try printed.stdout.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
            let viaKubeconfig = try kubectl(["--kubeconfig", kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])
            #expect(viaKubeconfig.stdout == "u-alice", "\(viaKubeconfig.stderr)")

            // An explicit role: the aggregated "view" role is filled by kube-controller-manager, which envtest does not run.
            try cluster.plane.adminOK(["create", "clusterrole", "configmap-reader", "--verb=get,list,watch", "--resource=configmaps"])
            try cluster.plane.adminOK(["create", "clusterrolebinding", "viewers", "--clusterrole=configmap-reader", "--group=github_team://viewers"])
            let allowed = try await repeatUntil(
                within: .seconds(20),
                {
                    let result = try cluster.plane.withToken(bearer, ["get", "configmaps", "-n", "kube-system", "-o", "name"])
                    return result.status == 0 ? "allowed" : result.stderr
                }
            ) { $0 == "allowed" }
            #expect(allowed == "allowed")
            // What the group's binding does not grant stays Forbidden for the Rancher user.
            let secrets = try cluster.plane.withToken(bearer, ["get", "secrets", "-n", "kube-system"])
            #expect(secrets.status != 0 && secrets.stderr.lowercased().contains("forbidden"), "\(secrets.stderr)")
            let create = try cluster.plane.withToken(bearer, ["create", "configmap", "x", "-n", "default"])
            #expect(create.status != 0 && create.stderr.lowercased().contains("forbidden"), "\(create.stderr)")
            let canI = try cluster.plane.withToken(bearer, ["auth", "can-i", "delete", "namespaces"])
            #expect(canI.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "no")
        }
    }

    @Test("Wrong secret, unknown token, malformed token: Unauthorized, and kube-apiserver logs no webhook error", arguments: ["v1", "v1beta1"])
    func refusals(version: String) async throws {
        try await WebhookCluster.run(version: version) { cluster in
            let bearer = try cluster.mint(user: "u-bob")
            let name = String(bearer.prefix { $0 != ":" })
            for token in [
                name + ":" + String(repeating: "x", count: 54), "kubeconfig-u-nobody:secret", "ext/kubeconfig-u-nobody:s", "no-colon-at-all",
            ] {
                let answer = try cluster.whoami(token)
                #expect(answer.unauthorized, "\(token): \(answer)")
            }
            #expect(try cluster.whoami(bearer).identity?.username == "u-bob")
            // kube-apiserver logs a webhook it could not use (a non-2xx answer, a body it cannot
            // decode, an answer in the other apiVersion) at error level; a clean refusal is not logged.
            let webhookErrors = cluster.plane.apiserverErrors.filter { $0.contains("webhook") || $0.contains("conversion") || $0.contains("decode") }
            #expect(webhookErrors.isEmpty, "\(webhookErrors)")
        }
    }

    @Test(
        "Revocations made with kubectl reach kubectl within kube-apiserver's success cache plus sync; re-enabling works at once",
        arguments: ["v1", "v1beta1"])
    func revocations(version: String) async throws {
        try await WebhookCluster.run(version: version) { cluster in
            let plane = cluster.plane
            let ns = ["-n", "cattle-system"]
            var tokens: [String: String] = [:]
            for kind in ["disabled", "expired", "deleted", "secret", "userdisabled", "userdeleted", "groups"] {
                tokens[kind] = try cluster.mint(user: "u-\(kind)", groups: ["g://\(kind)"])
                // Each is used once, so kube-apiserver holds a cached success for it.
                #expect(try cluster.whoami(tokens[kind]!).identity?.username == "u-\(kind)")
            }
            func name(_ kind: String) -> String { String(tokens[kind]!.prefix { $0 != ":" }) }
            let started = ContinuousClock.now
            try plane.adminOK(["patch", "clusterauthtoken", name("disabled"), "--type", "merge", "-p", #"{"enabled":false}"#] + ns)
            try plane.adminOK(["patch", "clusterauthtoken", name("expired"), "--type", "merge", "-p", #"{"expiresAt":"2020-01-01T00:00:00Z"}"#] + ns)
            try plane.adminOK(["delete", "clusterauthtoken", name("deleted")] + ns)
            try plane.adminOK(["delete", "secret", name("secret")] + ns)
            try plane.adminOK(["patch", "clusteruserattribute", "u-userdisabled", "--type", "merge", "-p", #"{"enabled":false}"#] + ns)
            try plane.adminOK(["delete", "clusteruserattribute", "u-userdeleted"] + ns)
            try plane.adminOK(["patch", "clusteruserattribute", "u-groups", "--type", "merge", "-p", #"{"groups":["g://new"]}"#] + ns)

            let (pending, reached) = try await awaitRevocations(tokens, since: started, within: .seconds(60), whoami: cluster.whoami)
            #expect(pending.isEmpty, "not revoked through kube-apiserver within 60 s: \(pending)")
            print("revocations reached kubectl after: \(reached.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" })")

            // A refusal is not cached by kube-apiserver: re-enabling takes effect as soon as it is synced.
            try plane.adminOK(["patch", "clusterauthtoken", name("disabled"), "--type", "merge", "-p", #"{"enabled":true}"#] + ns)
            try plane.adminOK(["patch", "clusteruserattribute", "u-userdisabled", "--type", "merge", "-p", #"{"enabled":true}"#] + ns)
            let reenabled = ContinuousClock.now
            #expect(
                try await cluster.whoamiUntil(tokens["disabled"]!, within: .seconds(20)) { $0.identity != nil }.identity?.username == "u-disabled")
            #expect(try await cluster.whoamiUntil(tokens["userdisabled"]!, within: .seconds(20)) { $0.identity != nil }.identity != nil)
            print("re-enabled tokens worked after \(ContinuousClock.now - reenabled)")
        }
    }

    @Test("lastUsedAt is written back, and a legacy ClusterAuthToken.hash authenticates and is migrated into its Secret")
    func writesBack() async throws {
        try await WebhookCluster.run { cluster in
            let plane = cluster.plane
            let ns = ["-n", "cattle-system"]
            let bearer = try cluster.mint(user: "u-carol")
            #expect(try cluster.whoami(bearer).identity?.username == "u-carol")
            let name = String(bearer.prefix { $0 != ":" })
            let lastUsed = try await repeatUntil(
                within: .seconds(20),
                {
                    try plane.adminOK(["get", "clusterauthtoken", name, "-o", "jsonpath={.lastUsedAt}"] + ns)
                }
            ) { !$0.isEmpty }
            #expect(!lastUsed.isEmpty, "lastUsedAt was not written")

            // A token as Rancher ≤ 2.12 wrote it: the hash in the token, no Secret.
            let secret = "legacysecret" + String(UUID().uuidString.lowercased().filter(\.isLetter).prefix(20))
            let hash = try Binary.run(["hash"], input: secret).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            Credentials.register(secret: secret)
            Credentials.register(hash: hash)
            let legacyName = "kubeconfig-u-dave1legacy"
            try plane.adminOK(
                ["apply", "-f", "-"],
                input: """
                    apiVersion: cluster.cattle.io/v3
                    kind: ClusterUserAttribute
                    metadata: {name: u-dave, namespace: cattle-system}
                    groups: ["g://legacy"]
                    enabled: true
                    ---
                    apiVersion: cluster.cattle.io/v3
                    kind: ClusterAuthToken
                    metadata: {name: \(legacyName), namespace: cattle-system}
                    userName: u-dave
                    enabled: true
                    hash: "\(hash)"
                    """)
            let legacy = legacyName + ":" + secret
            #expect(try await cluster.whoamiUntil(legacy, within: .seconds(10)) { $0.identity != nil }.identity?.username == "u-dave")
            let cleared = try await repeatUntil(
                within: .seconds(20),
                {
                    try plane.adminOK(["get", "clusterauthtoken", legacyName, "-o", "jsonpath={.hash}"] + ns)
                }
            ) { $0.isEmpty }
            #expect(cleared.isEmpty, "the legacy hash was not cleared")
            let stored = try plane.adminOK(["get", "secret", legacyName, "-o", "jsonpath={.data.hash}"] + ns)
            #expect(Data(base64Encoded: stored).map { String(decoding: $0, as: UTF8.self) } == hash)
            #expect(try await cluster.serviceLog(within: .seconds(20)) { $0.contains("migrated legacy token hash into its Secret") } != nil)
            // The migrated token is verified from its Secret now.
            #expect(authenticated(try cluster.directReview(legacy)))
        }
    }

    @Test("Restarted service: 503 until synced (never a refusal), then answers at once")
    func restartUntilSynced() async throws {
        try await WebhookCluster.run(version: "v1beta1") { cluster in
            let plane = cluster.plane
            let first = try cluster.mint(user: "u-erin")
            #expect(try cluster.whoami(first).identity?.username == "u-erin")
            // The running service stops; the next one cannot list the records yet (its binding is gone).
            try cluster.stopServices()
            try plane.adminOK(["delete", "rolebinding", "kube-api-auth", "-n", "cattle-system"])
            let second = try cluster.mint(user: "u-frank")
            let service = try cluster.startService()
            try service.waitForLog(containing: "list/watch failed")
            let answer = try cluster.directReview(second)
            #expect(answer.hasSuffix("\n503"), "\(answer)")
            #expect(!answer.contains("authenticated"))
            #expect(try curl(["-o", "/dev/null", "-w", "%{http_code}", service.baseURL + "/readyz"]) == "503")
            #expect(try cluster.whoami(second).unauthorized)
            #expect(plane.apiserverErrors.contains { $0.contains("webhook") }, "kube-apiserver logged the webhook's 503 as an error")

            try plane.adminOK(["apply", "-f", Binary.repositoryRoot.appendingPathComponent("manifests/rbac.yaml").path])
            try cluster.waitUntilSynced(service)
            #expect(try cluster.whoami(second).identity?.username == "u-frank")
            #expect(try cluster.whoami(first).identity?.username == "u-erin")
        }
    }

    @Test("Started with the API unreachable and a snapshot file: serves from it; a revocation made meanwhile applies on the first list")
    func snapshotWhileUnreachable() async throws {
        try await WebhookCluster.run(startService: false) { cluster in
            let plane = cluster.plane
            let kept = try cluster.mint(user: "u-gina")
            let revoked = try cluster.mint(user: "u-hank")
            let snapshot = plane.directory + "/snapshot"
            let first = try cluster.startService(["--snapshot-file", snapshot, "--snapshot-interval", "0.1"])
            try cluster.waitUntilSynced(first)
            try first.waitForLog(containing: "snapshot file written")
            try cluster.stopServices()

            try plane.adminOK([
                "patch", "clusterauthtoken", String(revoked.prefix { $0 != ":" }), "-n", "cattle-system", "--type", "merge", "-p",
                #"{"enabled":false}"#,
            ])
            plane.stopAPIServer()
            let second = try cluster.startService(["--snapshot-file", snapshot])
            try second.waitForLog(containing: "serving from the snapshot file")
            #expect(authenticated(try cluster.directReview(kept)))
            // The snapshot predates the revocation: until the API answers, it is all the service knows.
            #expect(authenticated(try cluster.directReview(revoked)))
            #expect(try curl([second.baseURL + "/readyz"]).contains("serving from the snapshot file"))

            try await plane.startAPIServer()
            try cluster.waitUntilSynced(second, timeout: 60)
            #expect(try cluster.directReview(revoked).contains(#""error":"token is disabled""#))
            #expect(try cluster.whoami(kept).identity?.username == "u-gina")
            #expect(try cluster.whoami(revoked).unauthorized)
        }
    }

    @Test("Webhook over mTLS (manifests/webhook/kube-api-authn-webhook-mtls.yaml): kube-apiserver's client certificate is required")
    func mutualTLSWebhook() async throws {
        try await WebhookCluster.run(mutualTLS: true) { cluster in
            let bearer = try cluster.mint(user: "u-ivan", groups: ["g://mtls"])
            #expect(try cluster.whoami(bearer).get() == .init(username: "u-ivan", groups: ["g://mtls", "system:authenticated"]))
            #expect(authenticated(try cluster.directReview(bearer)))
            let pki = cluster.plane.directory + "/webhook-pki/"
            let withoutCertificate = try runProcess(
                "/usr/bin/curl",
                ["-s", "-m", "10", "--cacert", pki + "ca.pem", "-d", review(bearer), "https://127.0.0.1:\(cluster.webhookPort)/v1/authenticate"])
            #expect(!withoutCertificate.stdout.contains("authenticated"))
        }
    }

    @Test("An emergency token through kube-apiserver: whoami shows the user and its ClusterUserAttribute's groups; revoke --apply ends it")
    func emergencyToken() async throws {
        try await WebhookCluster.run { cluster in
            let plane = cluster.plane
            let keys = try TemporaryDirectory()
            _ = try cluster.mint(user: "u-zoe", groups: ["g://oncall"])
            let manifest = try EmergencyEndToEndTests.keygen(keys, name: "key.pem", audience: "kube-api-auth:envtest")
            try plane.adminOK(["apply", "-f", "-"], input: manifest)
            let (token, jti) = try EmergencyEndToEndTests.issue(keys, key: "key.pem", user: "u-zoe", global: ["--kubeconfig", plane.adminKubeconfig])
            let identity = try await cluster.whoamiUntil(token, within: .seconds(20)) { $0.identity != nil }
            #expect(try identity.get() == .init(username: "u-zoe", groups: ["g://oncall", "system:authenticated"]))
            #expect(try await cluster.serviceLog(within: .seconds(20)) { $0.contains("jti=\(jti)") } != nil)

            let revoke = try Binary.run(["--kubeconfig", plane.adminKubeconfig, "emergency", "revoke", jti, "--apply", "--reason", "done"])
            #expect(revoke.status == 0, "\(revoke.stderr)")
            // kube-apiserver holds a success for about 10 s; then the revocation shows.
            #expect(try await cluster.whoamiUntil(token, within: .seconds(60)) { $0.unauthorized }.unauthorized)
        }
    }

    @Test("The proxy's impersonation checks, as SubjectAccessReviews against the real authorizer: allowed only where RBAC lets the user impersonate")
    func impersonationReviews() async throws {
        try await WebhookCluster.run(startService: false) { cluster in
            let plane = cluster.plane
            try plane.adminOK([
                "create", "clusterrole", "impersonate-bob", "--verb=impersonate", "--resource=users,groups", "--resource-name=bob",
                "--resource-name=devs",
            ])
            try plane.adminOK(["create", "clusterrolebinding", "impersonators", "--clusterrole=impersonate-bob", "--group=g://imp"])
            let client = try KubeClient(configuration: try KubeConfig.load(path: plane.adminKubeconfig), logger: Logger(label: "test"))
            func allowed(_ impersonation: ProxyRequestPolicy.Impersonation, groups: [String]) async throws -> Bool {
                for check in ProxyRequestPolicy.impersonationChecks(impersonation) {
                    guard try await client.subjectAccessReview(user: "u-1", groups: groups, attributes: check) else { return false }
                }
                return true
            }
            // RBAC bindings take a moment to reach the authorizer.
            let first = try await repeatUntil(
                within: .seconds(20),
                {
                    try await allowed(.init(user: "bob", groups: ["devs"]), groups: ["g://imp"]) ? "allowed" : "denied"
                }
            ) { $0 == "allowed" }
            #expect(first == "allowed")
            #expect(try await !allowed(.init(user: "alice"), groups: ["g://imp"]))
            #expect(try await !allowed(.init(user: "bob", groups: ["system:masters"]), groups: ["g://imp"]))
            #expect(try await !allowed(.init(user: "bob"), groups: ["g://other"]))
            try await client.shutdown()
        }
    }

    @Test("kubectl apply --dry-run=server of the kustomization and the CRDs: no error, no warning")
    func manifestsDryRun() async throws {
        try await WebhookCluster.run(startService: false) { cluster in
            let manifests = Binary.repositoryRoot.appendingPathComponent("manifests")
            let kustomization = try cluster.plane.admin(["apply", "--dry-run=server", "-k", manifests.path])
            #expect(kustomization.status == 0 && kustomization.stderr.isEmpty, "\(kustomization.stderr)")
            #expect(kustomization.stdout.contains("daemonset.apps/kube-api-auth"))
            let crds = try cluster.plane.admin(["apply", "--dry-run=server", "-f", manifests.appendingPathComponent("crds.yaml").path])
            #expect(crds.status == 0 && crds.stderr.isEmpty, "\(crds.stderr)")
            let examples = try cluster.plane.admin(["apply", "--dry-run=server", "-f", examplesDirectory])
            #expect(examples.status == 0 && examples.stderr.isEmpty, "\(examples.stderr)")
        }
    }
}
