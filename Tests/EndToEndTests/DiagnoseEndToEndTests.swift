import Foundation
import KubeAPIAuth
import KubeAPIAuthCore
import RancherAuth
import Testing
import TestSupport

/// `kube-api-auth diagnose` as an operator runs it (the admin kubeconfig), against a real
/// kube-apiserver whose records are what Rancher's cluster agent writes plus one broken record of
/// each kind; and the running service beside them.
@Suite("diagnose against a real kube-apiserver (KUBEBUILDER_ASSETS)", .serialized, .enabled(if: Envtest.available, Envtest.skipReason))
struct DiagnoseRealAPIServerTests {
    /// `kube-api-auth --kubeconfig ADMIN diagnose …` with `-o json`: the exit status and the report.
    static func diagnose(_ cluster: WebhookCluster, _ arguments: [String] = []) throws -> (status: Int32, report: DiagnosisReport, text: String) {
        let global = ["--kubeconfig", cluster.plane.adminKubeconfig]
        let json = try Binary.run(global + ["diagnose"] + arguments + ["-o", "json"])
        let text = try Binary.run(global + ["diagnose"] + arguments)
        for output in [json.stdout, json.stderr, text.stdout, text.stderr] {
            for secret in Credentials.all where output.contains(secret) {
                Issue.record("diagnose printed a secret or hash the test made")
            }
        }
        #expect(json.status == text.status, "text and json disagree on the exit status")
        guard let report = try? JSONDecoder().decode(DiagnosisReport.self, from: Data(json.stdout.utf8)) else {
            throw ProcessError(description: "diagnose -o json (exit \(json.status)): \(json.stdout)\n\(json.stderr)")
        }
        return (json.status, report, text.stdout)
    }

    /// One broken record of each kind, as a botched sync or a hand edit leaves them.
    static let brokenRecords = """
        apiVersion: cluster.cattle.io/v3
        kind: ClusterAuthToken
        metadata: {name: token-nohash, namespace: cattle-system}
        userName: u-alice
        enabled: true
        ---
        apiVersion: cluster.cattle.io/v3
        kind: ClusterAuthToken
        metadata: {name: token-v9, namespace: cattle-system}
        userName: u-alice
        enabled: true
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: token-v9, namespace: cattle-system}
        type: Opaque
        stringData: {hash: "$9:c2FsdA:ZGlnZXN0"}
        ---
        apiVersion: cluster.cattle.io/v3
        kind: ClusterAuthToken
        metadata: {name: token-unreadable, namespace: cattle-system}
        userName: u-alice
        enabled: "yes"
        ---
        apiVersion: cluster.cattle.io/v3
        kind: ClusterUserAttribute
        metadata: {name: u-unreadable, namespace: cattle-system}
        groups: "not-a-list"
        enabled: true
        ---
        apiVersion: cluster.cattle.io/v3
        kind: ClusterUserAttribute
        metadata: {name: u-lonely, namespace: cattle-system}
        groups: []
        enabled: true
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: token-gone, namespace: cattle-system}
        type: Opaque
        stringData: {hash: "$3:1:AAECAwQFBgc:JQzhvjFUqw7sLtERcKcxyLbQKyb2c4Tb2YchCRAogAvF+cJqR8FJEikdmT1yMUTko9By+2Vlo3pMJCFNGRiV1w"}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: kube-api-auth-emergency, namespace: cattle-system}
        type: Opaque
        stringData: {jwks: "this is not a key set"}

        """

    @Test(
        "A clean install: exit 0; then one broken record of each kind, a missing RBAC verb and an unusable emergency Secret, each named (exit 1); diagnose token for an accepted, a disabled, an expired, a hashless and a userless token; the service keeps serving good tokens and exports the same census"
    )
    func cleanThenBroken() async throws {
        try await WebhookCluster.run(startService: false) { cluster in
            let service = try cluster.startService()
            try cluster.waitUntilSynced(service)
            let alice = try cluster.mint(user: "u-alice", groups: ["g://ops"])
            let aliceName = String(alice.prefix { $0 != ":" })
            // Rancher's ClusterUserAttribute also carries extraByProvider: the shipped CRD keeps it,
            // and the service reads past it.
            try cluster.plane.adminOK([
                "patch", "clusteruserattribute", "u-alice", "-n", "cattle-system", "--type=merge", "-p",
                #"{"extraByProvider":{"github":{"principalid":["github_user://1"],"username":["alice"]}}}"#,
            ])
            let extra = try cluster.plane.adminOK([
                "get", "clusteruserattribute", "u-alice", "-n", "cattle-system", "-o", "jsonpath={.extraByProvider.github.username[0]}",
            ])
            #expect(extra == "alice")

            // A clean install.
            let clean = try Self.diagnose(cluster)
            #expect(clean.status == 0, "\(clean.text)")
            #expect(clean.report.problems.isEmpty, "\(clean.report.problems)")
            #expect(clean.report.api.allSatisfy { $0.ok })
            #expect(clean.report.rights.count == 14 && clean.report.rights.allSatisfy { $0.ok }, "\(clean.report.rights)")
            #expect(clean.report.census?.usableTokens == 1)
            #expect(clean.report.emergency?.present == false)
            #expect(clean.text.contains("No problems found."))
            let accepted = try Self.diagnose(cluster, ["token", aliceName])
            #expect(accepted.status == 0)
            #expect(accepted.report.token?.answer.authenticated == true)
            #expect(accepted.report.token?.answer.username == "u-alice")
            #expect(accepted.report.token?.answer.groups == ["g://ops"])
            #expect(accepted.report.token?.hash?.algorithm == "sha3")
            #expect(accepted.text.contains("answer for the correct secret: authenticated as u-alice"))

            // Broken records beside the good one.
            let dora = try cluster.mint(user: "u-dora")
            let eve = try cluster.mint(user: "u-eve")
            let (ghost, ghostManifests) = try cluster.mintedManifests(user: "u-ghost")
            let withoutUser = ghostManifests.components(separatedBy: "---\n").filter { !$0.contains("kind: ClusterUserAttribute") }
            try cluster.plane.adminOK(["apply", "-f", "-"], input: withoutUser.joined(separator: "---\n"))
            func name(_ bearer: String) -> String { String(bearer.prefix { $0 != ":" }) }
            try cluster.plane.adminOK(["patch", "clusterauthtoken", name(dora), "-n", "cattle-system", "--type=merge", "-p", #"{"enabled":false}"#])
            try cluster.plane.adminOK([
                "patch", "clusterauthtoken", name(eve), "-n", "cattle-system", "--type=merge", "-p", #"{"expiresAt":"2020-01-01T00:00:00Z"}"#,
            ])
            try cluster.plane.adminOK(["apply", "-f", "-"], input: Self.brokenRecords)
            // The Role without `patch` on clusteruserattributes (rule 1 of manifests/rbac.yaml).
            try cluster.plane.adminOK([
                "patch", "role", "kube-api-auth", "-n", "cattle-system", "--type=json", "-p",
                #"[{"op":"replace","path":"/rules/1/verbs","value":["get","list","watch","update"]}]"#,
            ])

            let broken = try Self.diagnose(cluster)
            #expect(broken.status == 1)
            let findings = Set((broken.report.census?.findings ?? []).map { "\($0.kind.rawValue) \($0.name) \($0.reason.rawValue)" })
            let expected = [
                "ClusterAuthToken token-nohash hash_missing", "ClusterAuthToken token-v9 hash_unknown_version",
                "ClusterAuthToken token-unreadable unreadable", "ClusterUserAttribute u-unreadable unreadable",
                "ClusterUserAttribute u-lonely unreferenced", "Secret token-gone unreferenced",
                "ClusterAuthToken \(name(ghost)) user_missing", "ClusterAuthToken \(name(dora)) disabled",
                "ClusterAuthToken \(name(eve)) expired",
            ]
            for finding in expected { #expect(findings.contains(finding), "\(finding) not in \(findings.sorted())") }
            #expect(findings.count == expected.count, "\(findings.sorted())")
            let missing = broken.report.rights.filter { !$0.ok }
            #expect(missing.map(\.check) == ["patch clusteruserattributes.cluster.cattle.io"])
            #expect(missing.first?.fix?.contains(#"resources: ["clusteruserattributes"] verbs: ["patch"]"#) == true, "\(missing)")
            #expect(broken.report.emergency?.present == true && broken.report.emergency?.problem != nil)
            for named in [
                "token-nohash", "token-v9", "token-unreadable", "u-unreadable", name(ghost), "patch clusteruserattributes", "kube-api-auth-emergency",
            ] {
                #expect(broken.text.contains(named), "the text report does not name \(named)")
            }

            let chains: [(String, Bool, String?)] = [
                (aliceName, true, nil), (name(dora), false, "token_disabled"), (name(eve), false, "token_expired"),
                ("token-nohash", false, "hash_missing"), (name(ghost), false, "user_not_found"),
            ]
            for (token, authenticated, reason) in chains {
                let chain = try Self.diagnose(cluster, ["token", token])
                #expect(chain.report.token?.answer.authenticated == authenticated, "\(token)")
                #expect(chain.report.token?.answer.reason == reason, "\(token)")
            }

            // The service beside the broken records: good tokens keep working, bad ones are refused.
            #expect(try cluster.whoami(alice).identity?.username == "u-alice")
            #expect(try await cluster.whoamiUntil(ghost, within: .seconds(10)) { $0.unauthorized }.unauthorized)
            // The same census from the running service: gauges, /readyz?verbose, one log line per problem.
            let gauge = #"kube_api_auth_records_unusable{kind="clusterauthtokens",reason="hash_missing"}"#
            let metrics = try await curlUntil([service.baseURL + "/metrics"], within: .seconds(20)) { metric($0, gauge) == 1 }
            #expect(metric(metrics, gauge) == 1)
            #expect(metric(metrics, #"kube_api_auth_records_unusable{kind="clusterauthtokens",reason="unreadable"}"#) == 1)
            #expect(metric(metrics, #"kube_api_auth_records_unusable{kind="clusteruserattributes",reason="unreadable"}"#) == 1)
            #expect(metric(metrics, #"kube_api_auth_records_unusable{kind="secrets",reason="unreferenced"}"#) == 1)
            #expect(metric(metrics, #"kube_api_auth_records_unusable{kind="clusterauthtokens",reason="disabled"}"#) == 1)
            let readiness = try curl([service.baseURL + "/readyz?verbose"])
            #expect(readiness.contains("records that cannot authenticate: ClusterAuthToken hash_missing: 1"), "\(readiness)")
            // More publications (alice's lastUsedAt, a new token) take the census again; each
            // problem stays logged once.
            _ = try cluster.mint(user: "u-frank")
            let counted = try await curlUntil([service.baseURL + "/metrics"], within: .seconds(20)) {
                metric($0, #"kube_api_auth_records{kind="clusterauthtokens"}"#) == 7
            }
            #expect(metric(counted, #"kube_api_auth_records{kind="clusterauthtokens"}"#) == 7)
            try service.waitForLog(containing: "name=token-v9 reason=hash_unknown_version")
            let lines = service.output.split(separator: "\n").filter { $0.contains("msg=\"record cannot authenticate\"") }
            #expect(lines.filter { $0.contains("name=token-nohash ") }.count == 1, "\(lines)")
            #expect(lines.filter { $0.contains("name=token-unreadable ") }.count == 1, "\(lines)")

            // A service started now lists the broken records: it syncs, serves the good token,
            // and counts the unreadable objects from its list.
            try cluster.stopServices()
            let restarted = try cluster.startService()
            try cluster.waitUntilSynced(restarted)
            #expect(try cluster.whoami(alice).identity?.username == "u-alice")
            let unreadable = #"kube_api_auth_records_unusable{kind="clusterauthtokens",reason="unreadable"}"#
            let relisted = try await curlUntil([restarted.baseURL + "/metrics"], within: .seconds(20)) { metric($0, unreadable) == 1 }
            #expect(metric(relisted, unreadable) == 1)
            #expect(metric(relisted, #"kube_api_auth_records_unusable{kind="clusteruserattributes",reason="unreadable"}"#) == 1)
            #expect(metric(relisted, #"kube_api_auth_records_unusable{kind="clusterauthtokens",reason="user_missing"}"#) == 1)
        }
    }
}

@Suite("diagnose: refusals before asking the cluster")
struct DiagnoseCommandTests {
    @Test("A whole bearer token given to diagnose token is refused without echoing its secret")
    func wholeTokenRefused() throws {
        let secret = "zzdiagnosesecretzz"
        let result = try Binary.run(["diagnose", "token", "kubeconfig-u-x:" + secret])
        #expect(result.status == 64)
        #expect(result.stderr.contains("never its secret"))
        #expect(!result.stderr.contains(secret) && !result.stdout.contains(secret))
    }

    @Test("An API server that cannot be reached: exit 2 and the reason")
    func unreachable() throws {
        let directory = try TemporaryDirectory()
        let port = try freeLoopbackPort()
        let kubeconfig = directory.file("kubeconfig")
        try """
        apiVersion: v1
        kind: Config
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:\(port)"}}]
        users: [{name: u, user: {token: abc}}]
        contexts: [{name: c, context: {cluster: c, user: u}}]
        current-context: c
        """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let result = try Binary.run(["--kubeconfig", kubeconfig, "diagnose"])
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("cannot be reached"), "\(result.stderr)")
    }
}
