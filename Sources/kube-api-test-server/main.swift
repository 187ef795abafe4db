import ArgumentParser
import Foundation
import KubeAPITestServer
import NIOSSL

/// `kube-api-test-server`: the in-repo Kubernetes API server as a process, for benchmarks and
/// local trials with kubectl and kube-api-auth.
@main
struct KubeAPITestServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kube-api-test-server",
        abstract: "A small Kubernetes API server for trying kube-api-auth with kubectl (tests and benchmarks only).")

    @Option(help: ArgumentHelp("Address to listen on.", valueName: "host:port"))
    var listen = "127.0.0.1:0"

    @Option(help: ArgumentHelp("Write a kubeconfig for this server to this file.", valueName: "path"))
    var kubeconfigOut: String?

    @Option(help: ArgumentHelp("Create the objects of the manifests (YAML or JSON) in this directory at start.", valueName: "dir"))
    var load: String?

    @Option(help: ArgumentHelp("Bearer token clients must present.", valueName: "token"))
    var token = "test-server-token"

    @Option(help: ArgumentHelp("Namespace the kubeconfig's context uses.", valueName: "name"))
    var namespace = "cattle-system"

    @Flag(help: "Serve plain HTTP instead of HTTPS with a generated certificate (kubectl then sends no token).")
    var plainHTTP = false

    func run() async throws {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ValidationError("--listen must look like 127.0.0.1:6443")
        }
        let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let server = try KubeAPITestServer(configuration: .init(token: token, tls: plainHTTP ? nil : SelfSignedIdentity()))
        if let load {
            do {
                let count = try ManifestLoader.load(directory: load, into: server.state)
                FileHandle.standardError.write(Data("loaded \(count) objects from \(load)\n".utf8))
            } catch {
                throw ValidationError("--load: \(error)")
            }
        }
        let bound = try await server.start(host: host, port: port)
        if let kubeconfigOut {
            try server.kubeconfig(namespace: namespace).write(toFile: kubeconfigOut, atomically: true, encoding: .utf8)
        }
        // Unbuffered, so that a parent process reading the pipe sees the line at once.
        let address = host.contains(":") ? "[\(host)]:\(bound)" : "\(host):\(bound)"
        FileHandle.standardOutput.write(Data("listening on \(server.configuration.tls == nil ? "http" : "https")://\(address)\n".utf8))
        try await Task.sleep(for: .seconds(10 * 365 * 86_400))
    }
}
