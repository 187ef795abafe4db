import Foundation
import Testing
import TestSupport

/// `kube-api-auth proxy` in front of a real kube-apiserver, started as the shipped
/// `manifests/proxy/` ServiceAccount (its ClusterRole and records Role applied with `kubectl apply -k`).
final class ProxyFixture: @unchecked Sendable {
    let cluster: WebhookCluster
    let proxy: ServiceProcess
    /// `https://127.0.0.1:PORT` of the proxy.
    let url: String
    /// The CA the proxy's serving certificate is signed by.
    let caPath: String
    let proxyServiceAccount = "system:serviceaccount:cattle-system:kube-api-auth-proxy"

    /// Every request the apiserver audits (Metadata level): who, as whom, from where.
    static let auditPolicy = """
        apiVersion: audit.k8s.io/v1
        kind: Policy
        omitStages: ["RequestReceived"]
        rules:
        - level: Metadata

        """

    init(_ cluster: WebhookCluster, extra: [String] = []) throws {
        self.cluster = cluster
        let plane = cluster.plane
        let applied = try plane.admin(["apply", "-k", Binary.repositoryRoot.appendingPathComponent("manifests/proxy").path])
        guard applied.status == 0, applied.stderr.isEmpty else { throw ProcessError(description: "apply -k manifests/proxy: \(applied.stderr)") }
        let token = try plane.adminOK(["create", "token", "kube-api-auth-proxy", "-n", "cattle-system", "--duration", "2h"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        Credentials.register(secret: token)
        let upstream = try plane.kubeconfig(token: token, name: "kube-api-auth-proxy")
        let pkiDirectory = plane.directory + "/proxy-pki"
        try FileManager.default.createDirectory(atPath: pkiDirectory, withIntermediateDirectories: true)
        let pki = try CertificateAuthority(in: pkiDirectory)
        try pki.issue("proxy", subject: "/CN=kube-api-auth-proxy", extensions: "subjectAltName=IP:127.0.0.1")
        caPath = pki.path("ca.pem")
        proxy = try ServiceProcess(
            global: ["--debug", "--kubeconfig", upstream], command: "proxy",
            serve: ["--tls-cert-file", pki.path("proxy.pem"), "--tls-private-key-file", pki.path("proxy.key"), "--last-used-interval", "0.2"]
                + extra)
        cluster.adopt(proxy)
        url = "https://\(proxy.address)"
        try cluster.waitUntilSynced(proxy)
    }

    /// kubectl through the proxy with only a bearer token, as a Rancher user's kubeconfig would run it.
    func kubectl(_ token: String?, _ arguments: [String], input: String = "") throws -> Binary.Result {
        var global = [
            "--kubeconfig", "/dev/null", "--server", url, "--certificate-authority", caPath, "--cache-dir",
            cluster.plane.directory + "/proxy-kubectl-cache",
        ]
        if let token { global += ["--token", token] }
        return try EndToEndTests.kubectl(global + arguments, input: input)
    }

    func whoami(_ token: String, _ extra: [String] = []) throws -> Result<WebhookCluster.Identity, ProcessError> {
        WebhookCluster.Identity.whoami(try kubectl(token, ["auth", "whoami", "-o", "json"] + extra))
    }

    /// curl to the proxy (TLS verified against its CA); returns body and, last line, the status code.
    func curl(_ path: String, _ arguments: [String] = []) throws -> String {
        try EndToEndTests.curl(["--cacert", caPath, "-w", "\n%{http_code}"] + arguments + [url + path])
    }

    /// The audit events (one JSON object per line) of the apiserver.
    var auditEvents: [[String: Any]] {
        cluster.plane.auditLog.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }
}

extension [String: Any] {
    var auditUser: String? { (self["user"] as? [String: Any])?["username"] as? String }
    var auditImpersonatedUser: String? { (self["impersonatedUser"] as? [String: Any])?["username"] as? String }
    var auditURI: String { self["requestURI"] as? String ?? "" }
}

@Suite(
    "The authenticating proxy in front of a real kube-apiserver (kubectl v1.36 through kube-api-auth proxy)",
    .enabled(
        if: Envtest.available,
        "KUBEBUILDER_ASSETS is unset, so there is no real kube-apiserver (export KUBEBUILDER_ASSETS=$(bash ../shared/envtest/install))"),
    .serialized)
struct ProxyRealAPIServerTests {
    @Test("Identity equals the webhook's; get/apply/patch/delete as the Rancher user; Forbidden without a binding; HTTP/2 from kubectl and curl")
    func identityAndVerbs() async throws {
        try await WebhookCluster.run(auditPolicy: ProxyFixture.auditPolicy) { cluster in
            let fixture = try ProxyFixture(cluster)
            let plane = cluster.plane
            let alice = try cluster.mint(user: "u-alice", groups: ["g://devs", "g://all"])
            // Both doors: the webhook through kube-apiserver, the proxy by impersonation.
            let viaWebhook = try await cluster.whoamiUntil(alice, within: .seconds(20)) { $0.identity != nil }
            let viaProxy = try fixture.whoami(alice)
            #expect(try viaProxy.get() == viaWebhook.get())
            #expect(try viaProxy.get() == .init(username: "u-alice", groups: ["g://devs", "g://all", "system:authenticated"]))

            try plane.adminOK(["create", "namespace", "team"])
            try plane.adminOK(["create", "role", "cm-editor", "-n", "team", "--verb=*", "--resource=configmaps"])
            try plane.adminOK(["create", "rolebinding", "devs", "-n", "team", "--role=cm-editor", "--group=g://devs"])
            let created = try await repeatUntil(
                within: .seconds(20),
                {
                    try fixture.kubectl(alice, ["create", "configmap", "one", "-n", "team", "--from-literal=a=1"]).stdout
                }
            ) { $0.contains("created") }
            #expect(created.contains("configmap/one created"))
            let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two, namespace: team}\ndata: {b: \"2\"}\n"
            let applied = try fixture.kubectl(alice, ["apply", "-f", "-"], input: manifest)
            #expect(applied.status == 0 && applied.stdout.contains("configmap/two created"), "\(applied.stderr)")
            let patched = try fixture.kubectl(alice, ["patch", "configmap", "one", "-n", "team", "--type=merge", "-p", #"{"data":{"a":"9"}}"#])
            #expect(patched.status == 0, "\(patched.stderr)")
            let read = try fixture.kubectl(alice, ["get", "configmap", "one", "-n", "team", "-o", "jsonpath={.data.a}"])
            #expect(read.stdout == "9", "\(read.stderr)")
            let deleted = try fixture.kubectl(alice, ["delete", "configmap", "two", "-n", "team"])
            #expect(deleted.status == 0 && deleted.stdout.contains("deleted"), "\(deleted.stderr)")
            let secrets = try fixture.kubectl(alice, ["get", "secrets", "-n", "team"])
            #expect(secrets.status != 0 && secrets.stderr.contains("Forbidden") && secrets.stderr.contains("u-alice"), "\(secrets.stderr)")

            // The apiserver saw the proxy impersonating the Rancher user, from the client's address.
            let events = fixture.auditEvents.filter { $0.auditURI.hasPrefix("/api/v1/namespaces/team/configmaps/one") }
            #expect(!events.isEmpty)
            #expect(events.allSatisfy { $0.auditUser == fixture.proxyServiceAccount && $0.auditImpersonatedUser == "u-alice" })
            #expect(events.allSatisfy { ($0["sourceIPs"] as? [String])?.first == "127.0.0.1" })

            // The README's step 5: a kubeconfig for the endpoint from the token on standard input.
            let printed = try Binary.run(["kubeconfig", "--server", fixture.url, "--certificate-authority", fixture.caPath], input: alice + "\n")
            #expect(printed.status == 0, "\(printed.stderr)")
            let userKubeconfig = plane.directory + "/proxy-ace.kubeconfig"
            try printed.stdout.write(toFile: userKubeconfig, atomically: true, encoding: .utf8)
            let whoami = try EndToEndTests.kubectl(["--kubeconfig", userKubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])
            #expect(whoami.stdout == "u-alice", "\(whoami.stderr)")
            // And what the README says to check: diagnose finds the proxy's rights and records complete.
            let diagnosed = try Binary.run(["--kubeconfig", plane.adminKubeconfig, "diagnose", "--door", "proxy"])
            #expect(diagnosed.status == 0, "\(diagnosed.stdout)\(diagnosed.stderr)")
            #expect(diagnosed.stdout.contains("service account cattle-system/kube-api-auth-proxy (proxy)"))
            #expect(
                diagnosed.stdout.contains("ok   impersonate users")
                    && diagnosed.stdout.contains("ok   create subjectaccessreviews.authorization.k8s.io"))

            // kubectl (client-go) speaks HTTP/2 to the proxy; so does curl --http2.
            try fixture.proxy.waitForLog(containing: "proto=h2")
            let version = try fixture.curl("/version", ["--http2", "-o", "/dev/null", "-w", "%{http_version}"])
            #expect(version.hasPrefix("2"), "\(version)")
        }
    }

    @Test(
        "Revocations (token disabled, expired, deleted; user disabled; groups changed) reach kubectl through the proxy as soon as the proxy has them: no success cache"
    )
    func revocations() async throws {
        try await WebhookCluster.run(auditPolicy: ProxyFixture.auditPolicy) { cluster in
            let fixture = try ProxyFixture(cluster)
            let plane = cluster.plane
            let ns = ["-n", "cattle-system"]
            var tokens: [String: String] = [:]
            for kind in ["disabled", "expired", "deleted", "userdisabled", "groups"] {
                tokens[kind] = try cluster.mint(user: "u-\(kind)", groups: ["g://\(kind)"])
            }
            // Each works through the proxy (so any cache of successes would now hold it).
            for (kind, token) in tokens {
                let identity = try await repeatUntil(within: .seconds(20), { (try? fixture.whoami(token).get().username) ?? "" }) { !$0.isEmpty }
                #expect(identity == "u-\(kind)")
            }
            func name(_ kind: String) -> String { String(tokens[kind]!.prefix { $0 != ":" }) }
            let started = ContinuousClock.now
            try plane.adminOK(["patch", "clusterauthtoken", name("disabled"), "--type", "merge", "-p", #"{"enabled":false}"#] + ns)
            try plane.adminOK(["patch", "clusterauthtoken", name("expired"), "--type", "merge", "-p", #"{"expiresAt":"2020-01-01T00:00:00Z"}"#] + ns)
            try plane.adminOK(["delete", "clusterauthtoken", name("deleted")] + ns)
            try plane.adminOK(["patch", "clusteruserattribute", "u-userdisabled", "--type", "merge", "-p", #"{"enabled":false}"#] + ns)
            try plane.adminOK(["patch", "clusteruserattribute", "u-groups", "--type", "merge", "-p", #"{"groups":["g://new"]}"#] + ns)
            let changed = ContinuousClock.now
            let (pending, reached) = try await awaitRevocations(tokens, since: changed, within: .seconds(30)) { try fixture.whoami($0) }
            #expect(pending.isEmpty, "not revoked through the proxy: \(pending)")
            // kube-apiserver's webhook cache would hold successes for ~10 s; the proxy has none.
            #expect(reached.values.allSatisfy { $0 < .seconds(8) }, "\(reached)")
            print(
                "revocations reached kubectl through the proxy after: \(reached.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }) (changes made in \(changed - started))"
            )
            // The refusal is the proxy's own 401 (a Kubernetes Status), for the deleted token too
            // (a Rancher-shaped token without a record is never passed upstream).
            let refused = try fixture.curl("/api?disabled-token", ["-H", "Authorization: Bearer \(tokens["disabled"]!)"])
            #expect(
                refused.hasSuffix("\n401") && refused.contains(#""kind":"Status""#) && refused.contains(#""reason":"Unauthorized""#), "\(refused)")
            let deleted = try fixture.curl("/api?deleted-token", ["-H", "Authorization: Bearer \(tokens["deleted"]!)"])
            #expect(deleted.hasSuffix("\n401") && deleted.contains(#""kind":"Status""#), "\(deleted)")
            #expect(!fixture.auditEvents.contains { $0.auditURI.contains("deleted-token") }, "a token without a record reached the apiserver")
            #expect(!fixture.auditEvents.contains { $0.auditURI.contains("disabled-token") }, "a refused token's request reached the apiserver")
        }
    }

    @Test(
        "Client impersonation: --as/--as-group allowed by an impersonation binding, Forbidden without; Impersonate-User: system:admin with an unprivileged Rancher token never reaches the apiserver as the proxy"
    )
    func clientImpersonation() async throws {
        try await WebhookCluster.run(auditPolicy: ProxyFixture.auditPolicy) { cluster in
            let fixture = try ProxyFixture(cluster)
            let plane = cluster.plane
            let lead = try cluster.mint(user: "u-lead", groups: ["g://leads"])
            let intern = try cluster.mint(user: "u-intern", groups: ["g://interns"])
            try plane.adminOK([
                "create", "clusterrole", "impersonate-carol", "--verb=impersonate", "--resource=users,groups", "--resource-name=carol",
                "--resource-name=g://viewers",
            ])
            try plane.adminOK(["create", "clusterrolebinding", "leads-impersonate", "--clusterrole=impersonate-carol", "--group=g://leads"])

            let allowed = try await repeatUntil(
                within: .seconds(20),
                {
                    (try? fixture.whoami(lead, ["--as", "carol", "--as-group", "g://viewers"]).get().username) ?? ""
                }
            ) { $0 == "carol" }
            #expect(allowed == "carol")
            #expect(
                try fixture.whoami(lead, ["--as", "carol", "--as-group", "g://viewers"]).get().groups == ["g://viewers", "system:authenticated"])
            // Beyond the binding: another group, another user.
            func forbidden(_ token: String, _ impersonation: [String]) throws -> Bool {
                let result = try fixture.kubectl(token, ["get", "--raw", "/api"] + impersonation)
                return result.status != 0 && result.stderr.contains("(Forbidden)") && result.stderr.contains("cannot impersonate")
            }
            #expect(try forbidden(lead, ["--as", "carol", "--as-group", "system:masters"]))
            #expect(try forbidden(lead, ["--as", "dave"]))
            // Without any binding.
            #expect(try forbidden(intern, ["--as", "carol"]))

            // A raw request: an unprivileged Rancher token asking for system:admin.
            let escalation = try fixture.curl(
                "/api/v1/namespaces/kube-system/secrets",
                ["-H", "Authorization: Bearer \(intern)", "-H", "Impersonate-User: system:admin", "-H", "Impersonate-Group: system:masters"])
            #expect(escalation.hasSuffix("\n403") && escalation.contains(#""reason":"Forbidden""#), "\(escalation)")
            let asProxy = fixture.auditEvents.filter {
                $0.auditUser == fixture.proxyServiceAccount && ["system:admin", "dave"].contains($0.auditImpersonatedUser ?? "")
            }
            #expect(asProxy.isEmpty, "the apiserver saw the proxy impersonate: \(asProxy)")
            #expect(!fixture.auditEvents.contains { $0.auditURI.hasPrefix("/api/v1/namespaces/kube-system/secrets") })
        }
    }

    @Test(
        "Pass-through: a service-account token acts as itself, anonymous /version as anonymous, with no credential of the proxy's; an emergency token is accepted"
    )
    func passThroughAndEmergency() async throws {
        try await WebhookCluster.run(auditPolicy: ProxyFixture.auditPolicy) { cluster in
            let fixture = try ProxyFixture(cluster)
            let plane = cluster.plane
            try plane.adminOK(["create", "namespace", "team"])
            try plane.adminOK(["create", "serviceaccount", "robot", "-n", "team"])
            let robot = try plane.adminOK(["create", "token", "robot", "-n", "team"]).trimmingCharacters(in: .whitespacesAndNewlines)
            Credentials.register(secret: robot)
            #expect(try fixture.whoami(robot).get().username == "system:serviceaccount:team:robot")
            let forbidden = try fixture.kubectl(robot, ["get", "secrets", "-n", "kube-system"])
            #expect(forbidden.status != 0 && forbidden.stderr.contains("system:serviceaccount:team:robot"), "\(forbidden.stderr)")
            let version = try fixture.curl("/version")
            #expect(version.hasSuffix("\n200") && version.contains("gitVersion"), "\(version)")
            let anonymous = try fixture.curl("/api/v1/namespaces/kube-system/secrets")
            #expect(anonymous.hasSuffix("\n403") && anonymous.contains("system:anonymous"), "\(anonymous)")
            // A Rancher token in the query and none in a header: refused by the proxy, so it never
            // reaches the apiserver's audit log as part of the requestURI.
            let queried = try cluster.mint(user: "u-query", groups: [])
            let inQuery = try fixture.curl("/api/v1/namespaces/team/configmaps?marker=query-credential&access_token=\(queried)")
            #expect(inQuery.hasSuffix("\n400") && inQuery.contains(#""kind":"Status""#) && inQuery.contains("access_token"), "\(inQuery)")
            let events = fixture.auditEvents
            #expect(!events.contains { $0.auditURI.contains("query-credential") }, "a query with access_token reached the apiserver")
            #expect(events.contains { $0.auditURI == "/version" && $0.auditUser == "system:anonymous" })
            #expect(events.contains { $0.auditUser == "system:serviceaccount:team:robot" && $0.auditImpersonatedUser == nil })
            #expect(
                !events.contains {
                    $0.auditUser == fixture.proxyServiceAccount && $0.auditImpersonatedUser == nil && !$0.auditURI.contains("cattle-system")
                        && !$0.auditURI.contains("subjectaccessreviews")
                })

            // An emergency token (issue 13) works at this door too.
            let keys = try TemporaryDirectory()
            _ = try cluster.mint(user: "u-zoe", groups: ["g://oncall"])
            let manifest = try EmergencyEndToEndTests.keygen(keys, name: "key.pem", audience: "kube-api-auth:envtest")
            try plane.adminOK(["apply", "-f", "-"], input: manifest)
            let (token, _) = try EmergencyEndToEndTests.issue(keys, key: "key.pem", user: "u-zoe", global: ["--kubeconfig", plane.adminKubeconfig])
            let zoe = try await repeatUntil(within: .seconds(20), { (try? fixture.whoami(token).get().username) ?? "" }) { !$0.isEmpty }
            #expect(zoe == "u-zoe")
            #expect(try fixture.whoami(token).get().groups == ["g://oncall", "system:authenticated"])
        }
    }

    @Test("kubectl get -w through the proxy receives the events another client makes meanwhile")
    func watch() async throws {
        try await WebhookCluster.run { cluster in
            let fixture = try ProxyFixture(cluster)
            let plane = cluster.plane
            let alice = try cluster.mint(user: "u-alice", groups: ["g://devs"])
            try plane.adminOK(["create", "namespace", "team"])
            try plane.adminOK(["create", "role", "cm-reader", "-n", "team", "--verb=get,list,watch", "--resource=configmaps"])
            try plane.adminOK(["create", "rolebinding", "devs", "-n", "team", "--role=cm-reader", "--group=g://devs"])
            _ = try await repeatUntil(within: .seconds(20), { "\(try fixture.kubectl(alice, ["get", "configmaps", "-n", "team"]).status)" }) {
                $0 == "0"
            }
            let log = plane.directory + "/watch.log"
            let watcher = try BackgroundProcess(
                name: "kubectl get -w", executable: try #require(kubectlPath),
                arguments: [
                    "--kubeconfig", "/dev/null", "--server", fixture.url, "--certificate-authority", fixture.caPath, "--token", alice,
                    "get", "configmaps", "-n", "team", "-w", "--output-watch-events",
                ],
                logPath: log)
            defer { watcher.stop() }
            for index in 1...3 {
                try plane.adminOK(["create", "configmap", "watched-\(index)", "-n", "team"])
                let seen = try await repeatUntil(within: .seconds(20), { watcher.log }) { $0.contains("watched-\(index)") }
                #expect(seen.contains("ADDED") && seen.contains("watched-\(index)"), "\(seen)")
            }
            try plane.adminOK(["delete", "configmap", "watched-2", "-n", "team"])
            let deleted = try await repeatUntil(within: .seconds(20), { watcher.log }) { $0.contains("DELETED") }
            #expect(deleted.contains("DELETED"), "\(deleted)")
            #expect(watcher.isRunning)
        }
    }

    @Test("Open watches follow the records: each revocation kind ends its watch (kubectl get -w over HTTP/2), another token's watch stays open")
    func openWatchesEnd() async throws {
        try await WebhookCluster.run(auditPolicy: ProxyFixture.auditPolicy) { cluster in
            let fixture = try ProxyFixture(cluster)
            let plane = cluster.plane
            let ns = ["-n", "cattle-system"]
            let kubectlBinary = try #require(kubectlPath)
            // Every test user may watch ConfigMaps in default, through one group.
            try plane.adminOK(["create", "clusterrole", "cm-watcher", "--verb=get,list,watch", "--resource=configmaps"])
            try plane.adminOK(["create", "rolebinding", "cm-watchers", "-n", "default", "--clusterrole=cm-watcher", "--group=g://watchers"])
            let kinds = ["disabled", "deleted", "hashdeleted", "userdisabled", "groups", "expiring", "control"]
            var tokens: [String: String] = [:]
            for kind in kinds { tokens[kind] = try cluster.mint(user: "u-\(kind)", groups: ["g://watchers"]) }
            func name(_ kind: String) -> String { String(tokens[kind]!.prefix { $0 != ":" }) }
            // An emergency token too, revoked by its id.
            let keys = try TemporaryDirectory()
            let manifest = try EmergencyEndToEndTests.keygen(keys, name: "key.pem", audience: "kube-api-auth:envtest")
            try plane.adminOK(["apply", "-f", "-"], input: manifest)
            _ = try cluster.mint(user: "u-oncall", groups: ["g://watchers"])
            let (emergency, jti) = try EmergencyEndToEndTests.issue(
                keys, key: "key.pem", user: "u-oncall", global: ["--kubeconfig", plane.adminKubeconfig])
            tokens["emergency"] = emergency
            for (kind, token) in tokens {
                let identity = try await repeatUntil(within: .seconds(30), { (try? fixture.whoami(token).get().username) ?? "" }) { !$0.isEmpty }
                #expect(!identity.isEmpty, "\(kind) never authenticated")
            }
            var watches: [String: BackgroundProcess] = [:]
            for (kind, token) in tokens {
                watches[kind] = try BackgroundProcess(
                    name: "watch \(kind)", executable: kubectlBinary,
                    arguments: [
                        "--kubeconfig", "/dev/null", "--server", fixture.url, "--certificate-authority", fixture.caPath, "--token", token,
                        "--cache-dir", plane.directory + "/watch-cache-\(kind)", "get", "configmaps", "-n", "default", "-w", "-o", "name",
                    ],
                    logPath: plane.directory + "/watch-\(kind).log")
            }
            defer { for watch in watches.values { watch.stop(grace: 1) } }
            try plane.adminOK(["create", "configmap", "opened", "-n", "default"])
            for (kind, watch) in watches {
                let log = try await repeatUntil(within: .seconds(30), { watch.log }) { $0.contains("configmap/opened") }
                #expect(log.contains("configmap/opened"), "the \(kind) watch did not start: \(log)")
            }
            // One change at a time: each ends its own watch, and only that one.
            let changes: [(kind: String, change: () throws -> Void)] = [
                (
                    "disabled",
                    { try plane.adminOK(["patch", "clusterauthtoken", name("disabled"), "--type", "merge", "-p", #"{"enabled":false}"#] + ns) }
                ),
                ("deleted", { try plane.adminOK(["delete", "clusterauthtoken", name("deleted")] + ns) }),
                ("hashdeleted", { try plane.adminOK(["delete", "secret", name("hashdeleted")] + ns) }),
                (
                    "userdisabled",
                    { try plane.adminOK(["patch", "clusteruserattribute", "u-userdisabled", "--type", "merge", "-p", #"{"enabled":false}"#] + ns) }
                ),
                (
                    "groups",
                    {
                        try plane.adminOK(
                            ["patch", "clusteruserattribute", "u-groups", "--type", "merge", "-p", #"{"groups":["g://watchers","g://new"]}"#] + ns)
                    }
                ),
                (
                    "emergency",
                    {
                        let revoke = try Binary.run([
                            "--kubeconfig", plane.adminKubeconfig, "emergency", "revoke", jti, "--apply", "--reason", "done",
                        ])
                        guard revoke.status == 0 else { throw ProcessError(description: "emergency revoke: \(revoke.stderr)") }
                    }
                ),
                // Given an expiresAt 3 s ahead: still valid, it lapses while its watch is open.
                (
                    "expiring",
                    {
                        let expiresAt = ISO8601DateFormatter().string(from: Date(timeIntervalSinceNow: 3))
                        try plane.adminOK(
                            ["patch", "clusterauthtoken", name("expiring"), "--type", "merge", "-p", #"{"expiresAt":"\#(expiresAt)"}"#] + ns)
                    }
                ),
            ]
            var ended: [String: Duration] = [:]
            for (kind, change) in changes {
                let watch = try #require(watches[kind])
                let changed = ContinuousClock.now
                try change()
                let made = ContinuousClock.now - changed
                let state = try await repeatUntil(within: .seconds(30), { watch.isRunning ? "open" : "ended" }) { $0 == "ended" }
                #expect(state == "ended", "the \(kind) watch is still open")
                ended[kind] = ContinuousClock.now - changed
                print("\(kind): watch ended \(ended[kind]!) after the change began (the change itself took \(made))")
                let stillOpen = changes.map(\.kind).drop { $0 != kind }.dropFirst() + ["control"]
                for other in stillOpen { #expect(watches[other]?.isRunning == true, "the \(kind) change ended the \(other) watch") }
            }
            #expect(watches["control"]?.isRunning == true, "the control watch ended")
            // The control watch still delivers events.
            try plane.adminOK(["create", "configmap", "after", "-n", "default"])
            let control = try await repeatUntil(within: .seconds(20), { watches["control"]?.log ?? "" }) { $0.contains("configmap/after") }
            #expect(control.contains("configmap/after"))
            let reasons = [
                "token_disabled", "token_deleted", "hash_changed", "user_disabled", "groups_changed", "token_expired", "emergency_revoked",
            ]
            let log = try await cluster.serviceLog(within: .seconds(20)) { log in reasons.allSatisfy { log.contains("reason=\($0)") } }
            for reason in reasons { #expect(log?.contains("reason=\(reason)") == true, "no session ended with \(reason)") }
            print("open watches ended after their change: \(ended.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" })")
        }
    }
}

extension Result where Failure == ProcessError {
    var forbidden: Bool {
        if case .failure(let error) = self { return error.description.contains("Forbidden") || error.description.contains("forbidden") }
        return false
    }
}
