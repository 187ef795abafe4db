import Foundation
import KubeAPITestServer
import Testing
import TestSupport

@Suite("Manifests")
struct ManifestsEndToEndTests {
    let manifests = Binary.repositoryRoot.appendingPathComponent("manifests")

    /// Installed by scripts/setup from PyPI (`kubernetes-validate`).
    static let validator: String? =
        ["/root/.pyenv/shims/kubernetes-validate", "/usr/local/bin/kubernetes-validate", "/usr/bin/kubernetes-validate"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }
        ?? (try? runProcess("/bin/sh", ["-c", "command -v kubernetes-validate"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        .flatMap { $0.isEmpty ? nil : $0 }

    @Test("Every resource manifest passes strict Kubernetes schema validation")
    func schemaValidation() throws {
        let validator = try #require(Self.validator, "kubernetes-validate is not installed (bash scripts/setup)")
        let files = ["crds.yaml", "rbac.yaml", "daemonset.yaml"].map { manifests.appendingPathComponent($0).path }
        let result = try runProcess(validator, ["--strict"] + files)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.components(separatedBy: " passed for resource ").count - 1 == 6)
    }

    @Test("The proxy's manifests pass strict schema validation and hold what the issue asks of them")
    func proxyManifests() throws {
        let validator = try #require(Self.validator, "kubernetes-validate is not installed (bash scripts/setup)")
        let directory = manifests.appendingPathComponent("proxy")
        let files = ["rbac.yaml", "deployment.yaml", "service.yaml"].map { directory.appendingPathComponent($0).path }
        let result = try runProcess(validator, ["--strict"] + files)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.components(separatedBy: " passed for resource ").count - 1 == 8)

        var objects: [String: JSONValue] = [:]
        for file in files {
            for object in try ManifestLoader.parse(try String(contentsOfFile: file, encoding: .utf8)) {
                objects["\(object["kind"]?.stringValue ?? "")/\(object["metadata"]?["name"]?.stringValue ?? "")"] = object
            }
        }
        let deployment = try #require(objects["Deployment/kube-api-auth-proxy"])
        let pod = try #require(deployment["spec"]?["template"]?["spec"])
        let container = try #require(pod["containers"]?[0])
        #expect(deployment["spec"]?["replicas"] == .number(2))
        #expect(pod["affinity"]?["podAntiAffinity"] != nil)
        #expect(pod["securityContext"]?["runAsUser"] == .number(1000) && pod["securityContext"]?["runAsNonRoot"] == .bool(true))
        #expect(container["securityContext"]?["readOnlyRootFilesystem"] == .bool(true))
        #expect(container["securityContext"]?["allowPrivilegeEscalation"] == .bool(false))
        #expect(container["securityContext"]?["capabilities"]?["drop"] == .array([.string("ALL")]))
        #expect(container["livenessProbe"] != nil && container["readinessProbe"] != nil)
        #expect(container["args"]?[0] == .string("proxy"))
        #expect(pod["volumes"]?[0]?["secret"]?["secretName"] == .string("kube-api-auth-proxy-tls"))
        #expect(objects["PodDisruptionBudget/kube-api-auth-proxy"] != nil && objects["Service/kube-api-auth-proxy"] != nil)
        // The ClusterRole: impersonate and SubjectAccessReviews, nothing else.
        let rules = try #require(objects["ClusterRole/kube-api-auth-proxy"]?["rules"])
        guard case .array(let list) = rules else { throw ProcessError(description: "no rules") }
        let verbs = Set(
            list.flatMap { rule -> [String] in
                guard case .array(let verbs)? = rule["verbs"] else { return [] }
                return verbs.compactMap(\.stringValue)
            })
        #expect(verbs == ["impersonate", "create"])
        let text = String(decoding: rules.serialized(), as: UTF8.self)
        for resource in ["users", "groups", "uids", "userextras/*", "subjectaccessreviews"] { #expect(text.contains("\"\(resource)\"")) }
    }

    @Test("The webhook configurations are kubeconfigs kube-apiserver can read, pointing at the service")
    func webhookConfigurations() throws {
        for (file, server) in [
            ("webhook/kube-api-authn-webhook.yaml", "http://127.0.0.1:6440/v1/authenticate"),
            ("webhook/kube-api-authn-webhook-mtls.yaml", "https://127.0.0.1:6440/v1/authenticate"),
        ] {
            let text = try String(contentsOf: manifests.appendingPathComponent(file), encoding: .utf8)
            #expect(text.contains("current-context: webhook"))
            #expect(text.contains("server: \(server)"))
        }
    }

    @Test("kubectl applies the kustomization and the CRDs to kube-api-test-server", .enabled(if: kubectlPath != nil, "needs kubectl"))
    func kubectlApply() async throws {
        let server = try KubeAPITestServer(configuration: .init(tls: SelfSignedIdentity()))
        try await server.start()
        let scratch = try TemporaryDirectory()
        let kubeconfig = try writeKubeconfig(for: server, in: scratch)
        let crds = try kubectl(["--kubeconfig", kubeconfig, "apply", "-f", manifests.appendingPathComponent("crds.yaml").path])
        #expect(crds.status == 0, "\(crds.stderr)")
        let applied = try kubectl(["--kubeconfig", kubeconfig, "apply", "-k", manifests.path])
        #expect(applied.status == 0, "\(applied.stderr)")
        for line in [
            "serviceaccount/kube-api-auth created", "role.rbac.authorization.k8s.io/kube-api-auth created",
            "rolebinding.rbac.authorization.k8s.io/kube-api-auth created", "daemonset.apps/kube-api-auth created",
        ] {
            #expect(applied.stdout.contains(line), "\(applied.stdout)")
        }
        let daemonSet = try kubectl(
            [
                "--kubeconfig", kubeconfig, "-n", "cattle-system", "get", "daemonset", "kube-api-auth", "-o",
                "jsonpath={.spec.template.spec.hostNetwork} {.spec.template.spec.securityContext.runAsUser} {.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem}",
            ])
        #expect(daemonSet.stdout == "true 1000 true", "\(daemonSet.stderr)")
    }
}
