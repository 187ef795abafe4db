import ArgumentParser
import Foundation
import KubeAPIAuth
import KubeAPIAuthCore
import RancherAuth

struct KubeconfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kubeconfig",
        abstract: "Print a kubeconfig that uses a Rancher token (or an emergency token) against a cluster endpoint.",
        discussion: """
            For the Authorized Cluster Endpoint: --server is a control-plane node or load balancer \
            whose kube-apiserver uses kube-api-auth as its token webhook. The token is read from \
            standard input (or --token-file), not from the command line, so that it stays out of \
            shell history and process listings. The kubeconfig holds the token: write it to a file \
            only you can read, e.g. `umask 077; … > ~/.kube/ace.yaml`.
            """)

    @Option(help: ArgumentHelp("The endpoint, https://HOST[:PORT].", valueName: "url"))
    var server: String

    @Option(help: ArgumentHelp("PEM CA bundle to trust for --server (embedded); default: the system's trust store.", valueName: "path"))
    var certificateAuthority: String?

    @Option(help: ArgumentHelp("Name of the cluster, user and context in the kubeconfig.", valueName: "name"))
    var name = "rancher-ace"

    @Option(help: ArgumentHelp("Read the token from this file instead of standard input.", valueName: "path"))
    var tokenFile: String?

    func validate() throws {
        guard let url = URL(string: server), url.scheme == "https", url.host != nil else {
            throw ValidationError("--server \"\(server)\" must be an https:// URL (kubectl sends tokens only over TLS)")
        }
        guard !name.isEmpty, !name.contains(where: { $0.isNewline || $0 == "\"" }) else { throw ValidationError("--name must be a plain name") }
    }

    func run() throws {
        var caData: String?
        if let certificateAuthority {
            guard let pem = try? String(contentsOfFile: certificateAuthority, encoding: .utf8), pem.contains("-----BEGIN CERTIFICATE-----") else {
                throw ValidationError("--certificate-authority \(certificateAuthority) is not a readable PEM certificate file")
            }
            caData = Data(pem.utf8).base64EncodedString()
        }
        let input: [UInt8]
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw ValidationError("--token-file \(tokenFile) cannot be read")
            }
            input = Array(data)
        } else {
            input = Array(FileHandle.standardInput.readDataToEndOfFile())
        }
        let token = ProcessEnvironment.secret(fromInput: input)
        guard !token.isEmpty, !token.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw ValidationError("no token (one line, no spaces) on \(tokenFile.map { "--token-file \($0)" } ?? "standard input")")
        }
        let cluster = caData.map { "    certificate-authority-data: \($0)\n" } ?? ""
        print(
            """
            apiVersion: v1
            kind: Config
            clusters:
            - name: \(Self.quoted(name))
              cluster:
                server: \(Self.quoted(server))
            \(cluster)users:
            - name: \(Self.quoted(name))
              user:
                token: \(Self.quoted(token))
            contexts:
            - name: \(Self.quoted(name))
              context: {cluster: \(Self.quoted(name)), user: \(Self.quoted(name))}
            current-context: \(Self.quoted(name))
            """)
    }

    static func quoted(_ value: String) -> String {
        var bytes: [UInt8] = []
        JSONWriter.appendString(value, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
