import Foundation
import KubeAPITestServer
import KubeClient
import Logging
import Testing

final class Scratch {
    let path = NSTemporaryDirectory() + "kube-client-test-" + UUID().uuidString

    init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }

    func write(_ name: String, _ text: String) throws -> String {
        let file = (path as NSString).appendingPathComponent(name)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct Unexpected: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct TokenRecord: Decodable, Sendable {
    struct Metadata: Decodable, Sendable { var name: String }
    var metadata: Metadata
    var enabled: Bool
}

@Suite("kubeconfig and in-cluster configuration")
struct KubeConfigTests {
    @Test("Token, CA data, namespace and the current context")
    func tokenAndCA() throws {
        let scratch = try Scratch()
        let path = try scratch.write(
            "config",
            """
            apiVersion: v1
            kind: Config
            current-context: b
            clusters:
            - {name: one, cluster: {server: "https://one.example:6443"}}
            - name: two
              cluster:
                server: https://two.example:6443
                certificate-authority-data: \(Data("PEM".utf8).base64EncodedString())
            users:
            - {name: alice, user: {token: abc}}
            contexts:
            - {name: a, context: {cluster: one, user: alice}}
            - {name: b, context: {cluster: two, user: alice, namespace: cattle-system}}
            """)
        let config = try KubeConfig.load(path: path)
        #expect(config.server == "https://two.example:6443")
        #expect(config.certificateAuthorityPEM == Array("PEM".utf8))
        #expect(config.namespace == "cattle-system")
        guard case .token("abc") = config.credentials else { Issue.record("expected token credentials"); return }
        #expect(try KubeConfig.load(path: path, context: "a").server == "https://one.example:6443")
    }

    @Test("File references are relative to the kubeconfig; client certificates and token files are read")
    func fileReferences() throws {
        let scratch = try Scratch()
        _ = try scratch.write("ca.pem", "CA")
        _ = try scratch.write("client.pem", "CERT")
        _ = try scratch.write("client.key", "KEY")
        let path = try scratch.write(
            "config",
            """
            current-context: c
            clusters: [{name: k, cluster: {server: "https://k:6443", certificate-authority: ca.pem, insecure-skip-tls-verify: true}}]
            users:
            - {name: cert, user: {client-certificate: client.pem, client-key: client.key}}
            - {name: file, user: {tokenFile: /var/run/token}}
            contexts: [{name: c, context: {cluster: k, user: cert}}, {name: f, context: {cluster: k, user: file}}]
            """)
        let config = try KubeConfig.load(path: path)
        #expect(config.certificateAuthorityPEM == Array("CA".utf8))
        #expect(config.insecureSkipTLSVerify)
        guard case .clientCertificate(let certificate, let key) = config.credentials else { Issue.record("expected a client certificate"); return }
        #expect(certificate == Array("CERT".utf8) && key == Array("KEY".utf8))
        guard case .tokenFile("/var/run/token") = try KubeConfig.load(path: path, context: "f").credentials else {
            Issue.record("expected a token file")
            return
        }
    }

    @Test(
        "Problems are explained and never quote credentials",
        arguments: [
            ("current-context: x\nclusters: []\ncontexts: []\n", "has no context named x"),
            ("clusters: [{name: k, cluster: {server: s}}]\ncontexts: [{name: c, context: {cluster: k}}]\n", "has no current-context"),
            ("current-context: c\nclusters: []\ncontexts: [{name: c, context: {cluster: k}}]\n", "names cluster k, which has no server"),
            (
                "current-context: c\nclusters: [{name: k, cluster: {server: s}}]\nusers: [{name: u, user: {exec: {command: x}}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n",
                "uses an exec plugin"
            ),
            (
                "current-context: c\nclusters: [{name: k, cluster: {server: s, certificate-authority: missing.pem}}]\ncontexts: [{name: c, context: {cluster: k}}]\n",
                "certificate-authority"
            ),
            ("users: [{name: u, user: {token: [supersecret]}}]\n", "wrong type or value at users"),
        ])
    func problems(text: String, message: String) throws {
        let scratch = try Scratch()
        let path = try scratch.write("config", text)
        do {
            _ = try KubeConfig.load(path: path)
            Issue.record("loaded an invalid kubeconfig")
        } catch {
            #expect(error.description.contains(message), "\(error)")
            #expect(!error.description.contains("supersecret"))
        }
    }

    @Test("In-cluster: service host and port, token file and CA; a clear error outside a cluster")
    func inCluster() throws {
        let scratch = try Scratch()
        _ = try scratch.write("token", "sa-token\n")
        _ = try scratch.write("ca.crt", "CA")
        let config = try KubeConfig.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"], directory: scratch.path)
        #expect(config.server == "https://[fd00::1]:443")
        #expect(config.certificateAuthorityPEM == Array("CA".utf8))
        #expect(throws: KubeConfig.LoadError.self) { try KubeConfig.inCluster(environment: [:], directory: scratch.path) }
    }
}

@Suite("KubeClient against the test API server")
struct KubeClientTests {
    let tokens = APIResource(group: "cluster.cattle.io", version: "v3", plural: "clusterauthtokens")

    /// Runs `body` with a server and a client, shutting the client down however `body` ends
    /// (AsyncHTTPClient traps on a client that is deinitialised while running).
    func withClient(_ body: (KubeAPITestServer, KubeClient) async throws -> Void) async throws {
        let (server, client) = try await start()
        do {
            try await body(server, client)
        } catch {
            try await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    func start() async throws -> (KubeAPITestServer, KubeClient) {
        let server = try KubeAPITestServer(configuration: .init(tls: SelfSignedIdentity()))
        try await server.start()
        for crd in try ManifestLoader.parse(
            try String(
                contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../manifests/crds.yaml"),
                encoding: .utf8))
        {
            try ManifestLoader.create(crd, in: server.state)
        }
        let scratch = try Scratch()
        let path = try scratch.write("kubeconfig", server.kubeconfig())
        return (server, try KubeClient(configuration: try KubeConfig.load(path: path), logger: Logger(label: "test")))
    }

    @Test("create, get, list (with a malformed item), merge and JSON patch; Status errors are typed")
    func verbs() async throws {
        try await withClient { server, client in
            _ = try await client.create(tokens, namespace: "ns", body: Data(#"{"metadata":{"name":"a"},"enabled":true}"#.utf8))
            _ = try await client.create(tokens, namespace: "ns", body: Data(#"{"metadata":{"name":"b"},"enabled":"yes"}"#.utf8))
            let list = try await client.list(tokens, namespace: "ns", as: TokenRecord.self)
            #expect(Int(list.resourceVersion) == Int(server.state.currentRevision))
            #expect(list.items.map(\.name) == ["a", "b"])
            #expect((try? list.items[0].result.get())?.enabled == true)
            guard case .failure(let error) = list.items[1].result else { throw Unexpected("b should not decode") }
            #expect(error.message == "field enabled: expected Bool")
            // Read in pages (limit + continue): the same objects and resourceVersion.
            _ = try await client.create(tokens, namespace: "ns", body: Data(#"{"metadata":{"name":"c"},"enabled":true}"#.utf8))
            let paged = try await client.list(tokens, namespace: "ns", as: TokenRecord.self, pageSize: 1)
            #expect(paged.items.map(\.name) == ["a", "b", "c"])
            #expect(Int(paged.resourceVersion) == Int(server.state.currentRevision))

            let patched = try await client.mergePatch(tokens, namespace: "ns", name: "a", patch: Data(#"{"enabled":false}"#.utf8))
            #expect(try JSONDecoder().decode(TokenRecord.self, from: patched).enabled == false)
            _ = try await client.jsonPatch(
                tokens, namespace: "ns", name: "a", patch: Data(#"[{"op":"replace","path":"/enabled","value":true}]"#.utf8))
            #expect(try JSONDecoder().decode(TokenRecord.self, from: try await client.get(tokens, namespace: "ns", name: "a")).enabled)

            await #expect { _ = try await client.get(tokens, namespace: "ns", name: "zzz") } throws: { ($0 as? KubeError)?.isNotFound == true }
            await #expect { _ = try await client.create(tokens, namespace: "ns", body: Data(#"{"metadata":{"name":"a"}}"#.utf8)) } throws: {
                ($0 as? KubeError)?.isAlreadyExists == true
            }
            await #expect {
                _ = try await client.mergePatch(tokens, namespace: "ns", name: "a", patch: Data(#"{"metadata":{"resourceVersion":"1"}}"#.utf8))
            } throws: { ($0 as? KubeError)?.isConflict == true }
        }
    }

    @Test("watch: events, bookmarks, and a 410 ERROR event as a typed error")
    func watch() async throws {
        try await withClient { server, client in
            let start = String(server.state.currentRevision)
            var events = try await client.watch(tokens, namespace: "ns", resourceVersion: start, timeoutSeconds: 30, as: TokenRecord.self)
                .makeAsyncIterator()
            _ = try await client.create(tokens, namespace: "ns", body: Data(#"{"metadata":{"name":"a"},"enabled":true}"#.utf8))
            // The server sends a BOOKMARK every second, so on a loaded machine one may precede the
            // ADDED event; it then carries the revision from before the create.
            var next = try await events.next()
            while case .bookmark(let version)? = next {
                #expect(version == start)
                next = try await events.next()
            }
            guard case .added(let added)? = next else { throw Unexpected("expected ADDED, got \(String(describing: next))") }
            #expect(added.name == "a")
            guard case .bookmark(let version)? = try await events.next() else { throw Unexpected("expected a BOOKMARK") }
            #expect(version == String(server.state.currentRevision))
            server.state.compact()
            var expired = try await client.watch(tokens, namespace: "ns", resourceVersion: start, timeoutSeconds: 30, as: TokenRecord.self)
                .makeAsyncIterator()
            guard case .error(let error)? = try await expired.next() else { throw Unexpected("expected an ERROR event") }
            #expect(error.isGone)
        }
    }

    @Test("Unauthorized and unreachable servers are typed errors; a token file is re-read after rotation")
    func credentials() async throws {
        try await withClient { server, _ in
            let scratch = try Scratch()
            let tokenFile = try scratch.write("token", "wrong\n")
            let config = KubeConfig(server: server.url, insecureSkipTLSVerify: true, credentials: .tokenFile(tokenFile))
            let client = try KubeClient(configuration: config, logger: Logger(label: "test"), tokenRereadInterval: .zero)
            do {
                await #expect { _ = try await client.list(tokens, namespace: "ns", as: TokenRecord.self) } throws: { ($0 as? KubeError)?.code == 401 }
                _ = try scratch.write("token", "test-server-token\n")
                #expect(try await client.list(tokens, namespace: "ns", as: TokenRecord.self).items.isEmpty)
                try await server.stop()
                // The keep-alive connection from before may be what fails first (I/O on a closed
                // channel): a transport error either way.
                await #expect { _ = try await client.list(tokens, namespace: "ns", as: TokenRecord.self) } throws: {
                    ($0 as? KubeError)?.kind == .transport
                }
                // A new connection finds nothing listening.
                let fresh = try KubeClient(configuration: config, logger: Logger(label: "test"), tokenRereadInterval: .zero)
                await #expect { _ = try await fresh.list(tokens, namespace: "ns", as: TokenRecord.self) } throws: {
                    guard let error = $0 as? KubeError, error.kind == .transport else { return false }
                    // Worded for a log line: the system's words, not nested client error descriptions.
                    return (error.description.hasSuffix(": Connection refused") || error.description.hasSuffix(": connect timed out"))
                        && !error.description.contains("error set")
                }
                try await fresh.shutdown()
            } catch {
                Issue.record(error)
            }
            try await client.shutdown()
        }
    }
}
