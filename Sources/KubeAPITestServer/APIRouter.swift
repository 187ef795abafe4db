import Foundation
import NIOHTTP1

/// A parsed request to the test API server.
struct APIRequest {
    var method: HTTPMethod
    var path: String
    var query: [String: String]
    var headers: HTTPHeaders
    var body: Data
}

/// What the router answers: a whole response, or the start of a watch stream.
enum APIResponse {
    case full(status: Int, body: Data, contentType: String)
    case watch(resource: ResourceType, namespace: String?, name: String?, resourceVersion: Int64?, bookmarks: Bool, timeoutSeconds: Int?)

    static func json(_ value: JSONValue, status: Int = 200) -> APIResponse {
        .full(status: status, body: value.serialized(), contentType: "application/json")
    }

    static func failure(_ error: APIStatusError) -> APIResponse {
        .json(error.body, status: error.code)
    }
}

/// Kubernetes REST paths and verbs over ``APIServerState``.
struct APIRouter {
    let state: APIServerState

    func handle(_ request: APIRequest) -> APIResponse {
        let segments = request.path.split(separator: "/").map(String.init)
        switch segments.first {
        case "version" where segments.count == 1:
            return .json(
                .object([
                    "major": .string("1"), "minor": .string("36"), "gitVersion": .string("v1.36.0-kube-api-test-server"),
                    "platform": .string("linux/amd64"),
                ]))
        case "openapi" where segments.count == 2 && segments[1] == "v2":
            // kubectl asks for the protobuf form; an empty Document is zero bytes.
            if request.headers.first(name: "accept")?.contains("application/com.github.proto-openapi.spec.v2") == true {
                return .full(status: 200, body: Data(), contentType: "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
            }
            // No schemas: kubectl's client-side validation then accepts any object, as for
            // schemaless CRDs (the server stores what it is given, like x-kubernetes-preserve-unknown-fields).
            return .json(
                .object([
                    "swagger": .string("2.0"), "info": .object(["title": .string("kube-api-test-server"), "version": .string("v1.36.0")]),
                    "paths": .object([:]), "definitions": .object([:]),
                ]))
        case "openapi" where segments.count == 2 && segments[1] == "v3":
            return .json(.object(["paths": .object([:])]))
        case "api":
            if segments.count == 1 {
                return .json(.object(["kind": .string("APIVersions"), "versions": .array([.string("v1")])]))
            }
            guard segments[1] == "v1" else { return .failure(.unknownResource) }
            if segments.count == 2 { return .json(resourceList(group: "", version: "v1")) }
            return resourceRequest(group: "", version: "v1", rest: Array(segments.dropFirst(2)), request)
        case "apis":
            if segments.count == 1 { return .json(groupList()) }
            if segments.count == 2 {
                return .json(group(segments[1]) ?? APIStatusError.unknownResource.body, status: group(segments[1]) == nil ? 404 : 200)
            }
            if segments.count == 3 {
                let list = resourceList(group: segments[1], version: segments[2])
                guard case .array(let resources)? = list["resources"], !resources.isEmpty else { return .failure(.unknownResource) }
                return .json(list)
            }
            return resourceRequest(group: segments[1], version: segments[2], rest: Array(segments.dropFirst(3)), request)
        default:
            return .failure(.unknownResource)
        }
    }

    // MARK: Discovery

    private func groupVersions(_ name: String) -> [String] {
        Array(Set(state.resourceTypes.filter { $0.group == name }.map(\.version))).sorted()
    }

    private func group(_ name: String) -> JSONValue? {
        let versions = groupVersions(name)
        guard !name.isEmpty, let preferred = versions.last else { return nil }
        func version(_ version: String) -> JSONValue {
            .object(["groupVersion": .string("\(name)/\(version)"), "version": .string(version)])
        }
        return .object([
            "kind": .string("APIGroup"), "apiVersion": .string("v1"), "name": .string(name),
            "versions": .array(versions.map(version)), "preferredVersion": version(preferred),
        ])
    }

    private func groupList() -> JSONValue {
        let names = Array(Set(state.resourceTypes.map(\.group).filter { !$0.isEmpty })).sorted()
        return .object(["kind": .string("APIGroupList"), "apiVersion": .string("v1"), "groups": .array(names.compactMap(group))])
    }

    private func resourceList(group: String, version: String) -> JSONValue {
        let verbs: JSONValue = .array(["create", "delete", "get", "list", "patch", "update", "watch"].map { .string($0) })
        let resources = state.resourceTypes.filter { $0.group == group && $0.version == version }.map { resource -> JSONValue in
            .object([
                "name": .string(resource.plural), "singularName": .string(resource.singular), "namespaced": .bool(resource.namespaced),
                "kind": .string(resource.kind), "verbs": verbs,
            ])
        }
        return .object([
            "kind": .string("APIResourceList"), "apiVersion": .string("v1"),
            "groupVersion": .string(group.isEmpty ? version : "\(group)/\(version)"), "resources": .array(resources),
        ])
    }

    // MARK: Resources

    /// `[namespaces/{ns}/]{plural}[/{name}]`
    private func resourceRequest(group: String, version: String, rest: [String], _ request: APIRequest) -> APIResponse {
        var rest = rest[...]
        var namespace: String?
        if rest.count >= 3, rest.first == "namespaces" {
            namespace = rest[rest.startIndex + 1]
            rest = rest.dropFirst(2)
        }
        guard let plural = rest.first, let resource = state.resolve(group: group, version: version, plural: plural) else {
            return .failure(.unknownResource)
        }
        let name = rest.count >= 2 ? rest[rest.startIndex + 1] : nil
        guard rest.count <= 2 else { return .failure(.unknownResource) }
        if !resource.namespaced, namespace != nil { return .failure(.unknownResource) }
        let objectNamespace = namespace ?? ""
        do {
            switch (request.method, name) {
            case (.GET, nil):
                let nameFilter = fieldSelectorName(request.query["fieldSelector"])
                if ["1", "true"].contains(request.query["watch"] ?? "") {
                    return .watch(
                        resource: resource, namespace: namespace, name: nameFilter,
                        resourceVersion: request.query["resourceVersion"].flatMap { Int64($0) },
                        bookmarks: request.query["allowWatchBookmarks"] == "true",
                        timeoutSeconds: request.query["timeoutSeconds"].flatMap { Int($0) })
                }
                // Paging: `limit`, and `continue` = "<resourceVersion of the first page>/<last key>".
                var after: String?
                var firstRevision: Int64?
                if let token = request.query["continue"], !token.isEmpty {
                    guard let slash = token.firstIndex(of: "/"), let revision = Int64(token[..<slash]) else {
                        return .failure(.badRequest("continue key is not valid"))
                    }
                    firstRevision = revision
                    after = String(token[token.index(after: slash)...])
                }
                let page = state.list(
                    resource, namespace: namespace, name: nameFilter, limit: request.query["limit"].flatMap { Int($0) }, after: after)
                let revision = firstRevision ?? page.revision
                var metadata: [String: JSONValue] = ["resourceVersion": .string(String(revision))]
                if let lastKey = page.lastKey {
                    metadata["continue"] = .string("\(revision)/\(lastKey)")
                    metadata["remainingItemCount"] = .number(Double(page.remaining))
                }
                return .json(
                    .object([
                        "kind": .string("\(resource.kind)List"), "apiVersion": .string(resource.groupVersion),
                        "metadata": .object(metadata), "items": .array(page.items),
                    ]))
            case (.GET, let name?):
                return .json(try state.get(resource, namespace: objectNamespace, name: name))
            case (.POST, nil):
                guard resource.namespaced == (namespace != nil) else { return .failure(.methodNotAllowed) }
                return .json(try state.create(resource, namespace: objectNamespace, object: try body(request)), status: 201)
            case (.PUT, let name?):
                return .json(try state.update(resource, namespace: objectNamespace, name: name, object: try body(request)))
            case (.PATCH, let name?):
                let contentType = request.headers.first(name: "content-type")?.split(separator: ";").first.map(String.init) ?? ""
                guard let type = APIServerState.PatchType(rawValue: contentType) else {
                    return .failure(
                        APIStatusError(
                            code: 415, reason: "UnsupportedMediaType",
                            message:
                                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"
                        ))
                }
                return .json(try state.patch(resource, namespace: objectNamespace, name: name, type: type, patch: try body(request)))
            case (.DELETE, let name?):
                let deleted = try state.delete(resource, namespace: objectNamespace, name: name)
                return .json(
                    .object([
                        "kind": .string("Status"), "apiVersion": .string("v1"), "metadata": .object([:]), "status": .string("Success"),
                        "details": .object([
                            "name": .string(name), "group": .string(resource.group), "kind": .string(resource.plural),
                            "uid": deleted["metadata"]?["uid"] ?? .null,
                        ]),
                    ]))
            default:
                return .failure(.methodNotAllowed)
            }
        } catch {
            return .failure(error)
        }
    }

    private func body(_ request: APIRequest) throws(APIStatusError) -> JSONValue {
        do {
            return try JSONValue.parse(request.body)
        } catch {
            throw .badRequest("the request body is not valid JSON")
        }
    }

    /// `metadata.name=x` (what `kubectl delete --wait` and single-object watches use).
    private func fieldSelectorName(_ selector: String?) -> String? {
        guard let selector else { return nil }
        for term in selector.split(separator: ",") {
            let parts = term.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "=")) }
            if parts.count == 2, parts[0] == "metadata.name" { return parts[1] }
        }
        return nil
    }
}
