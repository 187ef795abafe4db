/// A resource type the test server serves, as discovery describes it.
public struct ResourceType: Sendable, Hashable {
    public var group: String
    public var version: String
    public var plural: String
    public var singular: String
    public var kind: String
    public var namespaced: Bool

    public var groupVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    /// `clusterauthtokens.cluster.cattle.io`, or `secrets` for the core group (as in Status messages).
    public var qualifiedName: String { group.isEmpty ? plural : "\(plural).\(group)" }

    public static let secrets = ResourceType(group: "", version: "v1", plural: "secrets", singular: "secret", kind: "Secret", namespaced: true)
    public static let configMaps = ResourceType(
        group: "", version: "v1", plural: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true)
    public static let namespaces = ResourceType(
        group: "", version: "v1", plural: "namespaces", singular: "namespace", kind: "Namespace", namespaced: false)
    public static let customResourceDefinitions = ResourceType(
        group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", singular: "customresourcedefinition",
        kind: "CustomResourceDefinition", namespaced: false)

    public static let serviceAccounts = ResourceType(
        group: "", version: "v1", plural: "serviceaccounts", singular: "serviceaccount", kind: "ServiceAccount", namespaced: true)
    public static let roles = ResourceType(
        group: "rbac.authorization.k8s.io", version: "v1", plural: "roles", singular: "role", kind: "Role", namespaced: true)
    public static let roleBindings = ResourceType(
        group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings", singular: "rolebinding", kind: "RoleBinding", namespaced: true)
    public static let pods = ResourceType(group: "", version: "v1", plural: "pods", singular: "pod", kind: "Pod", namespaced: true)
    public static let daemonSets = ResourceType(
        group: "apps", version: "v1", plural: "daemonsets", singular: "daemonset", kind: "DaemonSet", namespaced: true)

    /// Served without a CRD: what the service reads, and what its manifests create.
    public static let builtIn: [ResourceType] = [
        .secrets, .configMaps, .namespaces, .customResourceDefinitions, .serviceAccounts, .roles, .roleBindings, .daemonSets, .pods,
    ]

    /// The resource types a stored CustomResourceDefinition object defines (one per served version).
    static func defined(by crd: JSONValue) -> [ResourceType] {
        guard let spec = crd["spec"], let group = spec["group"]?.stringValue, let names = spec["names"],
            let plural = names["plural"]?.stringValue, let kind = names["kind"]?.stringValue,
            case .array(let versions)? = spec["versions"]
        else { return [] }
        let singular = names["singular"]?.stringValue ?? kind.lowercased()
        let namespaced = spec["scope"]?.stringValue != "Cluster"
        return versions.compactMap { version in
            guard let name = version["name"]?.stringValue, version["served"] != .bool(false) else { return nil }
            return ResourceType(group: group, version: name, plural: plural, singular: singular, kind: kind, namespaced: namespaced)
        }
    }
}

/// Kubernetes `Status` failures, shaped exactly as kube-apiserver shapes them.
public struct APIStatusError: Error, Sendable {
    public var code: Int
    public var reason: String
    public var message: String
    public var details: JSONValue?

    public var body: JSONValue {
        var object: [String: JSONValue] = [
            "kind": .string("Status"), "apiVersion": .string("v1"), "metadata": .object([:]), "status": .string("Failure"),
            "message": .string(message), "reason": .string(reason), "code": .number(Double(code)),
        ]
        if let details { object["details"] = details }
        return .object(object)
    }

    static func details(_ resource: ResourceType, _ name: String) -> JSONValue {
        .object(["name": .string(name), "group": .string(resource.group), "kind": .string(resource.plural)])
    }

    static func notFound(_ resource: ResourceType, _ name: String) -> APIStatusError {
        APIStatusError(code: 404, reason: "NotFound", message: "\(resource.qualifiedName) \"\(name)\" not found", details: details(resource, name))
    }

    static func alreadyExists(_ resource: ResourceType, _ name: String) -> APIStatusError {
        APIStatusError(
            code: 409, reason: "AlreadyExists", message: "\(resource.qualifiedName) \"\(name)\" already exists", details: details(resource, name))
    }

    static func conflict(_ resource: ResourceType, _ name: String) -> APIStatusError {
        APIStatusError(
            code: 409, reason: "Conflict",
            message: "Operation cannot be fulfilled on \(resource.qualifiedName) \"\(name)\": the object has been modified; "
                + "please apply your changes to the latest version and try again",
            details: details(resource, name))
    }

    static func expired(requested: Int64, current: Int64) -> APIStatusError {
        APIStatusError(code: 410, reason: "Expired", message: "too old resource version: \(requested) (\(current))")
    }

    static func badRequest(_ message: String) -> APIStatusError {
        APIStatusError(code: 400, reason: "BadRequest", message: message)
    }

    static func invalid(_ resource: ResourceType, _ name: String, _ message: String) -> APIStatusError {
        APIStatusError(
            code: 422, reason: "Invalid", message: "\(resource.kind) \"\(name)\" is invalid: \(message)", details: details(resource, name))
    }

    static let unknownResource = APIStatusError(code: 404, reason: "NotFound", message: "the server could not find the requested resource")
    static let unauthorized = APIStatusError(code: 401, reason: "Unauthorized", message: "Unauthorized")
    static let methodNotAllowed = APIStatusError(
        code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
}
