import Foundation
import Testing
import TestSupport

/// The image users deploy, built from the Dockerfile by scripts/image-test, run as a pod runs it
/// (ContainerLaunch: uid 1000, read-only root, no capabilities, host loopback).
@Suite(
    "The image (KUBE_API_AUTH_IMAGE, built and run by scripts/image-test)", .serialized,
    .enabled(if: ContainerLaunch.image != nil, "KUBE_API_AUTH_IMAGE is unset: scripts/image-test builds the image and runs these"))
struct ImageEndToEndTests {
    static var image: String { ContainerLaunch.image ?? "" }

    @Test("The image's own settings: entrypoint kube-api-auth, command serve, user 1000:1000")
    func settings() throws {
        let inspected = try runProcess(
            ContainerLaunch.podman, ["image", "inspect", "--format", "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.User}}", Self.image])
        #expect(inspected.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == #"["kube-api-auth"] ["serve"] 1000:1000"#, "\(inspected.stdout)")
    }

    @Test("serve --records-dir on a mounted directory: /readyz answers, TokenReviews are decided, the read-only root is never written")
    func serve() async throws {
        let scratch = try TemporaryDirectory()
        let records = scratch.file("records")
        try FileManager.default.createDirectory(atPath: records, withIntermediateDirectories: true)
        let examples = Binary.repositoryRoot.appendingPathComponent("examples/records").path
        for file in try FileManager.default.contentsOfDirectory(atPath: examples) where file.hasSuffix(".yaml") {
            try FileManager.default.copyItem(atPath: examples + "/" + file, toPath: records + "/" + file)
        }
        let service = try ServiceProcess(global: [], serve: ["--records-dir", records], image: Self.image)
        let readiness = try curl([service.baseURL + "/readyz"])
        #expect(readiness.hasPrefix("ok: serving records from records directory \(records)"), "\(readiness)")
        let token = "kubeconfig-u-demo15wfb6:lxzqzf799fx8s9jkztkschr7tg9rwkzrtmqb7w7mt99jnd7hc552pc"
        let accepted = try await post(service.baseURL + "/v1/authenticate", review(token, apiVersion: "authentication.k8s.io/v1")).2
        #expect(accepted.contains(#""authenticated":true"#) && accepted.contains(#""username":"u-demo1""#), "\(accepted)")
        let refused = try await post(service.baseURL + "/v1/authenticate", review("kubeconfig-u-demo15wfb6:wrong")).2
        #expect(refused.contains(#""authenticated":false"#), "\(refused)")
        #expect(try service.stop() == 0)
    }

    @Test("proxy with a mounted certificate in front of the in-repo API server: a Rancher token's request is forwarded as its user")
    func proxy() async throws {
        let environment = try await ProxyEnvironment()
        try environment.startProxy(image: Self.image)
        let alice = try await environment.rancher.createToken(user: "u-alice", groups: ["g://devs"])
        let answer = try environment.curl("/api/v1/namespaces/cattle-system/configmaps?marker=image", ["-H", "Authorization: Bearer \(alice)"])
        #expect(answer.hasSuffix("\n200"), "\(answer)")
        let seen = try #require(environment.upstreamRequests("marker=image").last)
        #expect(seen.values("impersonate-user") == ["u-alice"])
        #expect(seen.values("impersonate-group") == ["g://devs"])
        #expect(seen.values("authorization") == ["Bearer \(environment.upstreamToken)"])
        #expect(try environment.proxy.stop() == 0)
    }
}
