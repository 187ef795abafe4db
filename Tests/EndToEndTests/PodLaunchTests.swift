import Foundation
import Testing
import TestSupport

/// The service as pods run it (uid 1000, no capabilities), and the harness check that every
/// end-to-end test relies on for that.
@Suite("Run as pods run it")
struct PodLaunchTests {
    @Test("Unprivileged, the webhook answers /readyz and a TokenReview, and the harness saw uid 1000 with no capabilities")
    func webhookUnprivileged() async throws {
        // ServiceProcess has checked /proc/<pid>/status before returning (PodLaunch.verifyUnprivileged).
        let service = try ServiceProcess(serve: ["--records-dir", examplesDirectory])
        #expect(try curl([service.baseURL + "/readyz"]).hasPrefix("ok"))
        #expect(authenticated(try await post(service.baseURL + "/v1/authenticate", review(demoToken)).2))
        #expect(try service.stop() == 0)
    }

    @Test(
        "The harness check refuses a process with root's uid and capabilities (this test process)",
        .enabled(if: PodUser.testsRunAsRoot, "the tests are not root, so nothing runs privileged"))
    func checkRefusesRoot() throws {
        #expect(throws: ProcessError.self) {
            try PodLaunch.verifyUnprivileged(pid: getpid(), binary: "/proc/self/exe")
        }
    }

    @Test("Only test-made paths are handed to the pod's user, never the checkout's files")
    func handedOverPaths() {
        let made = NSTemporaryDirectory() + "kube-api-auth-test-X/records"
        let paths = PodLaunch.testMadePaths(in: [
            "--records-dir", made, "--snapshot-file=\(made)/../snap.json", Binary.repositoryRoot.path, "/etc/passwd", "-v",
            "--listen", "127.0.0.1:0",
        ])
        let standardized = (made as NSString).standardizingPath
        #expect(paths == [standardized, (standardized as NSString).deletingLastPathComponent + "/snap.json"])
    }

    @Test(
        "A file the pod's user cannot reach (under a root-only directory) is run from a copy it can reach",
        .enabled(if: PodUser.testsRunAsRoot, "only root can make a directory the tests can enter and uid 1000 cannot"))
    func unreachableIsStaged() throws {
        let scratch = try TemporaryDirectory()
        let hidden = scratch.file("root-only")
        try FileManager.default.createDirectory(atPath: hidden, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let file = (hidden as NSString).appendingPathComponent("records.yaml")
        try "kind: List\n".write(toFile: file, atomically: true, encoding: .utf8)
        let reachable = PodLaunch.reachable(file, executable: false)
        #expect(reachable != file)
        let cat = try runProcess(PodLaunch.setpriv, ["--reuid=1000", "--regid=1000", "--clear-groups", "--", "/bin/cat", reachable])
        #expect(cat.status == 0 && cat.stdout == "kind: List\n", "\(cat.stderr)")
        #expect(PodLaunch.reachable(Binary.path, executable: true) == Binary.path, "the binary in use is reachable already")
    }
}

@Suite("Ports named before their listener exists")
struct LoopbackPortTests {
    @Test("Chosen outside the kernel's ephemeral range (no connection's source port lands there), free, never twice")
    func outsideEphemeralRange() throws {
        let ephemeral = LoopbackPorts.ephemeralRange()
        var seen = Set<Int>()
        for _ in 0..<50 {
            let port = try freeLoopbackPort()
            #expect(!ephemeral.contains(port), "\(port) is in \(ephemeral)")
            #expect(seen.insert(port).inserted, "\(port) handed out twice")
        }
        // A port that is listened on is not free.
        let port = try #require(seen.first)
        let listener = try #require(LoopbackPorts.bound(port))
        defer { close(listener) }
        try #require(listen(listener, 1) == 0)
        #expect(!LoopbackPorts.bindable(port))
        // Where the ephemeral range starts low, the choice is above it.
        #expect(LoopbackPorts(ephemeral: 1024...40_000).candidates == 40_001...65_535)
        #expect(LoopbackPorts(ephemeral: 32_768...60_999).candidates == 10_000...32_767)
    }
}
