import Foundation
import Yams

/// Where the API server is and how to authenticate to it: from a kubeconfig file or from the
/// in-cluster service account.
public struct KubeConfig: Sendable {
    public enum Credentials: Sendable {
        case none
        case token(String)
        /// A token file, re-read when it changes (projected service-account tokens rotate).
        case tokenFile(String)
        case clientCertificate(certificatePEM: [UInt8], keyPEM: [UInt8])
    }

    public var server: String
    public var certificateAuthorityPEM: [UInt8]?
    public var insecureSkipTLSVerify: Bool
    public var credentials: Credentials
    /// The context's namespace, if it names one.
    public var namespace: String?

    public init(
        server: String, certificateAuthorityPEM: [UInt8]? = nil, insecureSkipTLSVerify: Bool = false,
        credentials: Credentials = .none, namespace: String? = nil
    ) {
        self.server = server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.credentials = credentials
        self.namespace = namespace
    }

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    // MARK: kubeconfig files

    private struct File: Decodable {
        struct Named<T: Decodable>: Decodable {
            var name: String
            var value: T?

            enum CodingKeys: String, CodingKey { case name, cluster, user, context }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                name = try container.decode(String.self, forKey: .name)
                value =
                    try container.decodeIfPresent(T.self, forKey: .cluster)
                    ?? container.decodeIfPresent(T.self, forKey: .user)
                    ?? container.decodeIfPresent(T.self, forKey: .context)
            }
        }

        struct Cluster: Decodable {
            var server: String?
            var certificateAuthority: String?
            var certificateAuthorityData: String?
            var insecureSkipTLSVerify: Bool?

            enum CodingKeys: String, CodingKey {
                case server
                case certificateAuthority = "certificate-authority"
                case certificateAuthorityData = "certificate-authority-data"
                case insecureSkipTLSVerify = "insecure-skip-tls-verify"
            }
        }

        struct User: Decodable {
            var token: String?
            var tokenFile: String?
            var clientCertificate: String?
            var clientCertificateData: String?
            var clientKey: String?
            var clientKeyData: String?
            var exec: Exec?

            struct Exec: Decodable {}

            enum CodingKeys: String, CodingKey {
                case token, tokenFile, exec
                case clientCertificate = "client-certificate"
                case clientCertificateData = "client-certificate-data"
                case clientKey = "client-key"
                case clientKeyData = "client-key-data"
            }
        }

        struct Context: Decodable {
            var cluster: String
            var user: String?
            var namespace: String?
        }

        var clusters: [Named<Cluster>]?
        var users: [Named<User>]?
        var contexts: [Named<Context>]?
        var currentContext: String?

        enum CodingKeys: String, CodingKey {
            case clusters, users, contexts
            case currentContext = "current-context"
        }
    }

    /// Reads a kubeconfig file: its current context (or `context`), that context's cluster and user.
    /// File paths inside it are relative to the file's directory, as kubectl reads them.
    public static func load(path: String, context requestedContext: String? = nil) throws(LoadError) -> KubeConfig {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw LoadError(description: "kubeconfig \(path) cannot be read")
        }
        let file: File
        do {
            file = try YAMLDecoder().decode(File.self, from: text)
        } catch {
            throw LoadError(description: "kubeconfig \(path) is not a valid kubeconfig (\(Self.describe(error)))")
        }
        let directory = (path as NSString).deletingLastPathComponent
        func resolve(_ file: String) -> String { file.hasPrefix("/") ? file : (directory as NSString).appendingPathComponent(file) }
        func read(_ file: String, what: String) throws(LoadError) -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: resolve(file)) else {
                throw LoadError(description: "kubeconfig \(path): \(what) \(resolve(file)) cannot be read")
            }
            return Array(data)
        }
        func decode(_ base64: String, what: String) throws(LoadError) -> [UInt8] {
            guard let data = Data(base64Encoded: base64.filter { !$0.isWhitespace }) else {
                throw LoadError(description: "kubeconfig \(path): \(what) is not valid base64")
            }
            return Array(data)
        }

        guard let contextName = requestedContext ?? file.currentContext, !contextName.isEmpty else {
            throw LoadError(description: "kubeconfig \(path) has no current-context")
        }
        guard let context = file.contexts?.first(where: { $0.name == contextName })?.value else {
            throw LoadError(description: "kubeconfig \(path) has no context named \(contextName)")
        }
        guard let cluster = file.clusters?.first(where: { $0.name == context.cluster })?.value, let server = cluster.server else {
            throw LoadError(description: "kubeconfig \(path): context \(contextName) names cluster \(context.cluster), which has no server")
        }
        var ca: [UInt8]?
        if let data = cluster.certificateAuthorityData {
            ca = try decode(data, what: "certificate-authority-data")
        } else if let file = cluster.certificateAuthority {
            ca = try read(file, what: "certificate-authority")
        }
        var credentials = Credentials.none
        if let userName = context.user, let user = file.users?.first(where: { $0.name == userName })?.value {
            if let token = user.token, !token.isEmpty {
                credentials = .token(token)
            } else if let tokenFile = user.tokenFile {
                credentials = .tokenFile(resolve(tokenFile))
            } else if user.clientCertificate != nil || user.clientCertificateData != nil {
                let certificate: [UInt8]
                if let data = user.clientCertificateData {
                    certificate = try decode(data, what: "client-certificate-data")
                } else {
                    certificate = try read(user.clientCertificate ?? "", what: "client-certificate")
                }
                guard let keySource = user.clientKeyData ?? user.clientKey else {
                    throw LoadError(description: "kubeconfig \(path): user \(userName) has a client certificate but no client key")
                }
                let key = user.clientKeyData != nil ? try decode(keySource, what: "client-key-data") : try read(keySource, what: "client-key")
                credentials = .clientCertificate(certificatePEM: certificate, keyPEM: key)
            } else if user.exec != nil {
                throw LoadError(
                    description:
                        "kubeconfig \(path): user \(userName) uses an exec plugin, which kube-api-auth does not run; use a token, token file or client certificate"
                )
            }
        }
        return KubeConfig(
            server: server, certificateAuthorityPEM: ca, insecureSkipTLSVerify: cluster.insecureSkipTLSVerify ?? false,
            credentials: credentials, namespace: context.namespace)
    }

    // MARK: In-cluster

    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The pod's service account: `KUBERNETES_SERVICE_HOST`/`_PORT`, its token (re-read as it
    /// rotates) and CA, like client-go's `rest.InClusterConfig`.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment, directory: String = serviceAccountDirectory
    ) throws(LoadError) -> KubeConfig {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty, let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else {
            throw LoadError(
                description:
                    "not running in a cluster (KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set) and no --kubeconfig or KUBECONFIG was given"
            )
        }
        let tokenPath = (directory as NSString).appendingPathComponent("token")
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw LoadError(description: "in-cluster service account token \(tokenPath) cannot be read")
        }
        let ca = FileManager.default.contents(atPath: (directory as NSString).appendingPathComponent("ca.crt")).map(Array.init)
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return KubeConfig(server: "https://\(hostPart):\(port)", certificateAuthorityPEM: ca, credentials: .tokenFile(tokenPath))
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context):
            // The value itself is not quoted: kubeconfigs hold credentials.
            return "wrong type or value at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.keyNotFound(let key, let context):
            return "\((context.codingPath + [key]).map(\.stringValue).joined(separator: ".")) is missing"
        default:
            return "invalid YAML"
        }
    }
}
