import AsyncHTTPClient
import Foundation
import KubeAPITestServer
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Testing

/// A running test server and a client for it.
struct ServerHarness {
    let server: KubeAPITestServer
    let token = "test-server-token"

    init(historyLimit: Int = 200_000) async throws {
        server = try KubeAPITestServer(state: APIServerState(historyLimit: historyLimit))
        try await server.start()
        _ = try ManifestLoader.parse(try String(contentsOf: repositoryRoot.appendingPathComponent("manifests/crds.yaml"), encoding: .utf8))
            .map { try ManifestLoader.create($0, in: server.state) }
    }

    func request(
        _ method: HTTPMethod, _ path: String, body: String? = nil, contentType: String = "application/json", authorized: Bool = true
    ) async throws -> (status: Int, body: JSONValue) {
        var request = HTTPClientRequest(url: server.url + path)
        request.method = method
        if authorized { request.headers.add(name: "authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "content-type", value: contentType)
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 24)
        return (Int(response.status.code), try JSONValue.parse(Data(buffer: bytes)))
    }

    /// Opens a watch and returns its event lines as they arrive.
    func watch(_ path: String) async throws -> AsyncThrowingStream<JSONValue, any Error> {
        var request = HTTPClientRequest(url: server.url + path)
        request.headers.add(name: "authorization", value: "Bearer \(token)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        return AsyncThrowingStream { continuation in
            let task = Task {
                var pending = Data()
                do {
                    for try await chunk in response.body {
                        pending.append(contentsOf: chunk.readableBytesView)
                        while let newline = pending.firstIndex(of: 0x0A) {
                            continuation.yield(try JSONValue.parse(pending[pending.startIndex..<newline]))
                            pending.removeSubrange(pending.startIndex...newline)
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
let tokens = "/apis/cluster.cattle.io/v3/namespaces/cattle-system/clusterauthtokens"

func tokenObject(_ name: String, enabled: Bool = true, resourceVersion: String? = nil) -> String {
    let version = resourceVersion.map { #","resourceVersion":"\#($0)""# } ?? ""
    return
        #"{"apiVersion":"cluster.cattle.io/v3","kind":"ClusterAuthToken","metadata":{"name":"\#(name)"\#(version)},"userName":"u-1","enabled":\#(enabled)}"#
}

@Suite("KubeAPITestServer follows the Kubernetes API conventions")
struct KubeAPITestServerTests {
    @Test("Discovery lists the CRD-backed group once its CRDs exist")
    func discovery() async throws {
        let harness = try await ServerHarness()
        let groups = try await harness.request(.GET, "/apis")
        #expect(groups.body.serialized().count > 0)
        let names =
            groups.body["groups"].map { group -> [String] in
                guard case .array(let list) = group else { return [] }
                return list.compactMap { $0["name"]?.stringValue }
            } ?? []
        #expect(names.contains("cluster.cattle.io"))
        let resources = try await harness.request(.GET, "/apis/cluster.cattle.io/v3")
        #expect(resources.body["resources"].map { "\($0)" }?.contains("clusterauthtokens") == true)
        #expect(try await harness.request(.GET, "/apis/nope.example/v1").status == 404)
    }

    @Test("Create, get, list: one global resourceVersion that increases with every write")
    func createGetList() async throws {
        let harness = try await ServerHarness()
        let created = try await harness.request(.POST, tokens, body: tokenObject("a"))
        #expect(created.status == 201)
        let first = try #require(Int(created.body.metadata("resourceVersion") ?? ""))
        #expect(created.body.metadata("uid") != nil)
        #expect(created.body.metadata("namespace") == "cattle-system")
        let second = try await harness.request(
            .POST, "/api/v1/namespaces/cattle-system/secrets", body: #"{"metadata":{"name":"a"},"stringData":{"hash":"$3:x"}}"#)
        #expect(try #require(Int(second.body.metadata("resourceVersion") ?? "")) > first)
        #expect(second.body["data"]?["hash"]?.stringValue == Data("$3:x".utf8).base64EncodedString())
        #expect(second.body["stringData"] == nil)
        #expect(second.body["type"]?.stringValue == "Opaque")
        let got = try await harness.request(.GET, tokens + "/a")
        #expect(got.body["userName"]?.stringValue == "u-1")
        let list = try await harness.request(.GET, tokens)
        #expect(list.body["kind"]?.stringValue == "ClusterAuthTokenList")
        #expect(list.body["metadata"]?["resourceVersion"]?.stringValue == second.body.metadata("resourceVersion"))
    }

    @Test("Lists page with limit and continue; every page carries the first page's resourceVersion")
    func pagedList() async throws {
        let harness = try await ServerHarness()
        for name in ["a", "b", "c"] { _ = try await harness.request(.POST, tokens, body: tokenObject(name)) }
        let first = try await harness.request(.GET, tokens + "?limit=2")
        #expect(first.body["items"]?.arrayValue?.compactMap { $0.metadata("name") } == ["a", "b"])
        #expect(first.body["metadata"]?["remainingItemCount"] == .number(1))
        let token = try #require(first.body["metadata"]?["continue"]?.stringValue)
        let version = first.body["metadata"]?["resourceVersion"]?.stringValue
        _ = try await harness.request(.POST, tokens, body: tokenObject("d"))
        let escaped = try #require(token.addingPercentEncoding(withAllowedCharacters: .alphanumerics))
        let second = try await harness.request(.GET, tokens + "?limit=2&continue=\(escaped)")
        #expect(second.body["items"]?.arrayValue?.compactMap { $0.metadata("name") } == ["c", "d"])
        #expect(second.body["metadata"]?["resourceVersion"]?.stringValue == version)
        #expect(second.body["metadata"]?["continue"] == nil)
        #expect(try await harness.request(.GET, tokens + "?limit=2&continue=garbage").status == 400)
    }

    @Test("Errors are Status objects: 404 NotFound, 409 AlreadyExists, 409 Conflict, 401, 415")
    func statusErrors() async throws {
        let harness = try await ServerHarness()
        let missing = try await harness.request(.GET, tokens + "/nope")
        #expect(missing.status == 404)
        #expect(missing.body["kind"]?.stringValue == "Status")
        #expect(missing.body["reason"]?.stringValue == "NotFound")
        #expect(missing.body["message"]?.stringValue == #"clusterauthtokens.cluster.cattle.io "nope" not found"#)
        #expect(missing.body["details"]?["name"]?.stringValue == "nope")

        let created = try await harness.request(.POST, tokens, body: tokenObject("a"))
        let again = try await harness.request(.POST, tokens, body: tokenObject("a"))
        #expect(again.status == 409)
        #expect(again.body["reason"]?.stringValue == "AlreadyExists")

        let version = try #require(created.body.metadata("resourceVersion"))
        let updated = try await harness.request(.PUT, tokens + "/a", body: tokenObject("a", enabled: false, resourceVersion: version))
        #expect(updated.status == 200)
        let stale = try await harness.request(.PUT, tokens + "/a", body: tokenObject("a", enabled: true, resourceVersion: version))
        #expect(stale.status == 409)
        #expect(stale.body["reason"]?.stringValue == "Conflict")

        #expect(try await harness.request(.GET, tokens, authorized: false).status == 401)
        #expect(try await harness.request(.PATCH, tokens + "/a", body: "{}", contentType: "text/plain").status == 415)
    }

    @Test("Merge patch (with a resourceVersion precondition) and JSON patch")
    func patches() async throws {
        let harness = try await ServerHarness()
        let created = try await harness.request(.POST, tokens, body: tokenObject("a"))
        let version = try #require(created.body.metadata("resourceVersion"))
        let merged = try await harness.request(
            .PATCH, tokens + "/a", body: #"{"lastUsedAt":"2026-01-01T00:00:00Z"}"#, contentType: "application/merge-patch+json")
        #expect(merged.body["lastUsedAt"]?.stringValue == "2026-01-01T00:00:00Z")
        #expect(merged.body["enabled"] == .bool(true))
        let conditional = try await harness.request(
            .PATCH, tokens + "/a", body: #"{"metadata":{"resourceVersion":"\#(version)"},"hash":""}"#, contentType: "application/merge-patch+json")
        #expect(conditional.status == 409)
        let json = try await harness.request(
            .PATCH, tokens + "/a", body: #"[{"op":"replace","path":"/enabled","value":false},{"op":"add","path":"/hash","value":""}]"#,
            contentType: "application/json-patch+json")
        #expect(json.body["enabled"] == .bool(false))
        #expect(json.body["hash"]?.stringValue == "")
        let failedTest = try await harness.request(
            .PATCH, tokens + "/a", body: #"[{"op":"test","path":"/enabled","value":true}]"#, contentType: "application/json-patch+json")
        #expect(failedTest.status == 422)
    }

    @Test("Watch from a list's resourceVersion sees later events in order, with bookmarks")
    func watchFromList() async throws {
        let harness = try await ServerHarness()
        _ = try await harness.request(.POST, tokens, body: tokenObject("before"))
        let list = try await harness.request(.GET, tokens)
        let version = try #require(list.body["metadata"]?["resourceVersion"]?.stringValue)
        let events = try await harness.watch(tokens + "?watch=1&resourceVersion=\(version)&allowWatchBookmarks=true&timeoutSeconds=20")
        var iterator = events.makeAsyncIterator()
        _ = try await harness.request(.POST, tokens, body: tokenObject("after"))
        _ = try await harness.request(.PATCH, tokens + "/after", body: #"{"enabled":false}"#, contentType: "application/merge-patch+json")
        _ = try await harness.request(.DELETE, tokens + "/after")
        var seen: [String] = []
        while seen.count < 3, let event = try await iterator.next() {
            let type = event["type"]?.stringValue ?? ""
            if type != "BOOKMARK" { seen.append("\(type) \(event["object"]?.metadata("name") ?? "")") }
        }
        #expect(seen == ["ADDED after", "MODIFIED after", "DELETED after"])
        // A bookmark arrives within the interval and carries the current resourceVersion.
        while let event = try await iterator.next() {
            if event["type"]?.stringValue == "BOOKMARK" {
                #expect(event["object"]?.metadata("resourceVersion") == String(harness.server.state.currentRevision))
                break
            }
        }
    }

    @Test("A watch without resourceVersion starts with the current objects as ADDED")
    func watchFromNow() async throws {
        let harness = try await ServerHarness()
        _ = try await harness.request(.POST, tokens, body: tokenObject("a"))
        var iterator = try await harness.watch(tokens + "?watch=true&timeoutSeconds=20").makeAsyncIterator()
        let first = try await iterator.next()
        #expect(first?["type"]?.stringValue == "ADDED")
        #expect(first?["object"]?.metadata("name") == "a")
    }

    @Test("Resuming from an old resourceVersion replays; a compacted one gets a 410 ERROR event")
    func resumeAndExpire() async throws {
        let harness = try await ServerHarness()
        let created = try await harness.request(.POST, tokens, body: tokenObject("a"))
        let version = try #require(created.body.metadata("resourceVersion"))
        _ = try await harness.request(.PATCH, tokens + "/a", body: #"{"enabled":false}"#, contentType: "application/merge-patch+json")
        var replay = try await harness.watch(tokens + "?watch=1&resourceVersion=\(version)&timeoutSeconds=20").makeAsyncIterator()
        let replayed = try await replay.next()
        #expect(replayed?["type"]?.stringValue == "MODIFIED")
        #expect(replayed?["object"]?["enabled"] == .bool(false))

        harness.server.state.compact()
        var expired = try await harness.watch(tokens + "?watch=1&resourceVersion=\(version)").makeAsyncIterator()
        let error = try await expired.next()
        #expect(error?["type"]?.stringValue == "ERROR")
        #expect(error?["object"]?["code"] == .number(410))
        #expect(error?["object"]?["reason"]?.stringValue == "Expired")
        #expect(try await expired.next() == nil)
    }

    @Test("timeoutSeconds ends a watch; dropAllWatches ends them at once")
    func watchEnds() async throws {
        let harness = try await ServerHarness()
        var timed = try await harness.watch(tokens + "?watch=1&resourceVersion=1&timeoutSeconds=1").makeAsyncIterator()
        #expect(try await timed.next() == nil)
        var dropped = try await harness.watch(tokens + "?watch=1&resourceVersion=1&timeoutSeconds=60").makeAsyncIterator()
        #expect(harness.server.state.activeWatchCount == 1)
        harness.server.state.dropAllWatches()
        // A dropped connection ends the stream, with or without an error, long before its timeout.
        let next = try? await dropped.next()
        #expect(next == nil)
    }

    @Test("Faults: injected 503s, then normal service; stop refuses connections and start reuses the port")
    func faults() async throws {
        let harness = try await ServerHarness()
        harness.server.failRequests(count: 2, status: 503)
        #expect(try await harness.request(.GET, tokens).status == 503)
        #expect(try await harness.request(.GET, tokens).body["reason"]?.stringValue == "ServiceUnavailable")
        #expect(try await harness.request(.GET, tokens).status == 200)
        let port = harness.server.port
        try await harness.server.stop()
        await #expect(throws: (any Error).self) { _ = try await harness.request(.GET, tokens) }
        #expect(try await harness.server.start() == port)
        #expect(try await harness.request(.GET, tokens).status == 200)
    }
}
