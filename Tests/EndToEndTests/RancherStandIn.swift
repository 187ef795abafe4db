import AsyncHTTPClient
import Foundation
import KubeAPITestServer
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import TestSupport

/// Plays Rancher's cluster agent against the test API server, through its HTTP API, the way
/// spec §5.3 describes: CRDs, then per token the user attribute, the hash Secret and the token.
struct RancherStandIn {
    let server: KubeAPITestServer
    let namespace = "cattle-system"
    /// The test server's certificate is generated per run; the stand-in does not check it.
    static let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(certificateVerification: .none))

    struct APIFailure: Error, CustomStringConvertible {
        let description: String
    }

    @discardableResult
    func call(_ method: HTTPMethod, _ path: String, _ body: String? = nil, contentType: String = "application/json") async throws -> JSONValue {
        var request = HTTPClientRequest(url: server.url + path)
        request.method = method
        request.headers.add(name: "authorization", value: "Bearer \(server.configuration.token ?? "")")
        if let body {
            request.headers.add(name: "content-type", value: contentType)
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await Self.client.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 22)
        guard (200..<300).contains(response.status.code) else {
            throw APIFailure(description: "\(method) \(path): \(response.status) \(String(buffer: bytes))")
        }
        return try JSONValue.parse(Data(buffer: bytes))
    }

    var tokens: String { "/apis/cluster.cattle.io/v3/namespaces/\(namespace)/clusterauthtokens" }
    var users: String { "/apis/cluster.cattle.io/v3/namespaces/\(namespace)/clusteruserattributes" }
    var secrets: String { "/api/v1/namespaces/\(namespace)/secrets" }

    func installCRDs() async throws {
        let text = try String(contentsOf: Binary.repositoryRoot.appendingPathComponent("manifests/crds.yaml"), encoding: .utf8)
        for crd in try ManifestLoader.parse(text) {
            try await call(.POST, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", String(decoding: crd.serialized(), as: UTF8.self))
        }
    }

    /// Mints a token like Rancher: ensures the user, writes the Secret, then the token.
    /// With `legacy`, the hash goes into `ClusterAuthToken.hash` (Rancher ≤ 2.12) and no Secret is written.
    func createToken(
        user: String, groups: [String] = [], legacy: Bool = false, expiresAt: String? = nil, algorithm: String = "sha3"
    ) async throws -> String {
        let minted = try Binary.run(["token", "create", "--user", user, "--output", "-"])
        let bearer = String(minted.stderr.split(separator: "\n").last ?? "")
        let name = String(bearer.prefix { $0 != ":" })
        let secret = String(bearer.drop { $0 != ":" }.dropFirst())
        let hash = try Binary.run(["hash", "--algorithm", algorithm], input: secret).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        Credentials.register(secret: secret)
        Credentials.register(hash: hash)
        try await ensureUser(user, groups: groups)
        if !legacy {
            try await call(
                .POST, secrets, #"{"metadata":{"name":"\#(name)"},"type":"Opaque","data":{"hash":"\#(Data(hash.utf8).base64EncodedString())"}}"#)
        }
        let expiry = expiresAt.map { #","expiresAt":"\#($0)""# } ?? ""
        try await call(
            .POST, tokens,
            #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"\#(name)"},"userName":"\#(user)","enabled":true,"hash":"\#(legacy ? hash : "")"\#(expiry)}"#
        )
        return bearer
    }

    func ensureUser(_ user: String, groups: [String]) async throws {
        let list = groups.map { #""\#($0)""# }.joined(separator: ",")
        do {
            try await call(
                .POST, users,
                #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterUserAttribute","metadata":{"name":"\#(user)"},"groups":[\#(list)],"enabled":true,"needsRefresh":false}"#
            )
        } catch {
            try await patch(users + "/\(user)", #"{"groups":[\#(list)]}"#)
        }
    }

    func patch(_ path: String, _ body: String) async throws {
        try await call(.PATCH, path, body, contentType: "application/merge-patch+json")
    }

    /// Rotates a token's secret: a new hash in its Secret; returns the new bearer token.
    func rotateSecret(_ bearer: String, algorithm: String = "scrypt") async throws -> String {
        let name = String(bearer.prefix { $0 != ":" })
        let secret = "rotated" + String(bearer.suffix(20))
        let hash = try Binary.run(["hash", "--algorithm", algorithm], input: secret).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        Credentials.register(secret: secret)
        Credentials.register(hash: hash)
        try await patch(secrets + "/\(name)", #"{"data":{"hash":"\#(Data(hash.utf8).base64EncodedString())"}}"#)
        return "\(name):\(secret)"
    }

    func deleteToken(_ bearer: String) async throws {
        let name = String(bearer.prefix { $0 != ":" })
        try await call(.DELETE, secrets + "/\(name)")
        try await call(.DELETE, tokens + "/\(name)")
    }
}

/// A kubeconfig file for the test server, written to a scratch directory.
func writeKubeconfig(for server: KubeAPITestServer, in directory: TemporaryDirectory) throws -> String {
    let path = (directory.path as NSString).appendingPathComponent("kubeconfig")
    try server.kubeconfig().write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// Asks the service until `accept` likes the answer, for at most `within` (see `repeatUntil`);
/// returns the last answer. The bound is generous on purpose: how fast a change arrives is a
/// benchmark figure (`bench/run`), not a pass/fail condition.
func reviewUntil(
    _ service: ServiceProcess, _ token: String, within: Duration = .seconds(30), _ accept: (String) -> Bool
) async throws -> String {
    try await repeatUntil(within: within, { try await post(service.baseURL + "/v1/authenticate", review(token)).2 }, accept)
}

func authenticated(_ answer: String) -> Bool { answer.contains(#""authenticated":true"#) }
