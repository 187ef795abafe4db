import Foundation
import KubeClient
import Logging
import RancherAuth

/// What `kube-api-auth diagnose` looks at: the cluster of a kubeconfig (or the in-cluster service
/// account), the namespace of the records, and the service account the service runs as.
public struct DiagnoseConfiguration: Sendable {
    public enum Door: String, Sendable, CaseIterable {
        /// `serve`: reads the records, writes lastUsedAt/needsRefresh and migrates legacy hashes.
        case webhook
        /// `proxy`: the same, plus impersonation and SubjectAccessReviews.
        case proxy
    }

    public var kubeconfig: String?
    public var namespace: String
    /// The service account whose rights are checked (`NAME` in `namespace`, or `NAMESPACE:NAME`).
    public var serviceAccount: String
    public var door: Door
    public var emergencySecretName: String
    /// `diagnose token NAME`: the chain of one token as well.
    public var tokenName: String?

    public init(
        kubeconfig: String?, namespace: String, serviceAccount: String, door: Door, emergencySecretName: String, tokenName: String? = nil
    ) {
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.serviceAccount = serviceAccount
        self.door = door
        self.emergencySecretName = emergencySecretName
        self.tokenName = tokenName
    }

    /// The service account's namespace and name.
    var serviceAccountParts: (namespace: String, name: String) {
        let parts = serviceAccount.split(separator: ":", maxSplits: 1).map(String.init)
        return parts.count == 2 ? (parts[0], parts[1]) : (namespace, serviceAccount)
    }
}

/// One check of the cluster: passed, or what is wrong and what fixes it.
public struct DiagnosisCheck: Sendable, Codable, Equatable {
    public var check: String
    public var ok: Bool
    public var detail: String?
    /// What fixes it (for a missing right: the RBAC rule that grants it).
    public var fix: String?
}

/// The emergency Secret as the service would read it: public keys and settings only.
public struct EmergencyState: Sendable, Codable, Equatable {
    public struct Key: Sendable, Codable, Equatable {
        public var kid: String
        public var algorithm: String
    }

    public var secret: String
    public var present: Bool
    public var keys: [Key] = []
    public var audience: String?
    public var maxLifetimeSeconds: Int64?
    public var revokedTokenIDs: Int = 0
    /// Why the service would turn emergency access off with this Secret (present but unusable).
    public var problem: String?
}

/// Everything `diagnose` found. Holds no secret: no token secret is ever asked for, hashes are
/// described by their format problem only, and the emergency Secret holds public keys.
public struct DiagnosisReport: Sendable, Codable, Equatable {
    public var server: String
    public var namespace: String
    public var serviceAccount: String
    public var door: String
    public var api: [DiagnosisCheck] = []
    public var rights: [DiagnosisCheck] = []
    public var emergency: EmergencyState?
    public var census: RecordCensus?
    public var token: TokenDiagnosis?
    /// Everything that needs fixing, one sentence each (the exit status is non-zero when any).
    public var problems: [String] = []

    public var hasProblems: Bool { !problems.isEmpty }
}

/// Runs the checks of `kube-api-auth diagnose`, read-only: discovery, SubjectAccessReviews, lists.
public enum Diagnosis {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// - Throws: ``Failure`` when the cluster cannot be reached or asked at all.
    public static func run(_ configuration: DiagnoseConfiguration, logger: Logger, now: Timestamp) async throws -> DiagnosisReport {
        let kubeconfig: KubeConfig
        do {
            kubeconfig = try KubeConfig.load(orInCluster: configuration.kubeconfig)
        } catch {
            throw Failure(description: "\(error)")
        }
        let client: KubeClient
        do {
            client = try KubeClient(configuration: kubeconfig, logger: logger)
        } catch {
            throw Failure(description: "\(error)")
        }
        do {
            let report = try await run(configuration, client: client, now: now)
            try? await client.shutdown()
            return report
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    static func run(_ configuration: DiagnoseConfiguration, client: KubeClient, now: Timestamp) async throws -> DiagnosisReport {
        let account = configuration.serviceAccountParts
        var report = DiagnosisReport(
            server: client.configuration.server, namespace: configuration.namespace,
            serviceAccount: "\(account.namespace)/\(account.name)", door: configuration.door.rawValue)
        report.api = try await apiChecks(client)
        report.rights = await rightChecks(configuration, client: client)
        let servedKinds = Set(report.api.filter(\.ok).map(\.check))
        report.emergency = try await emergencyState(configuration, client: client)
        if servedKinds.count == report.api.count {
            let (snapshot, unreadable) = try await records(configuration, client: client)
            report.census = RecordCensus.take(snapshot, unreadable: unreadable, now: now)
            if let name = configuration.tokenName {
                report.token = TokenDiagnosis(name: name, snapshot: snapshot, now: now)
            }
        }
        report.problems = problems(of: report)
        return report
    }

    // MARK: The API

    /// Rancher's two record kinds must be served (`cluster.cattle.io/v3`), as the CRDs make them.
    static func apiChecks(_ client: KubeClient) async throws -> [DiagnosisCheck] {
        struct ResourceList: Decodable {
            struct Resource: Decodable { var name: String }
            var resources: [Resource]?
        }
        let wanted = [APIResource.clusterAuthTokens, .clusterUserAttributes]
        var served: Set<String> = []
        var problem: String?
        do {
            let data = try await client.get(path: "/apis/cluster.cattle.io/v3")
            served = Set((try? JSONDecoder().decode(ResourceList.self, from: data))?.resources?.map(\.name) ?? [])
        } catch let error where error.isNotFound {
            problem = "the API group cluster.cattle.io/v3 is not served"
        } catch let error where error.kind == .transport {
            throw Failure(description: "the API server cannot be reached: \(error)")
        } catch {
            problem = "discovery of cluster.cattle.io/v3 failed: \(error)"
        }
        return wanted.map { resource in
            let ok = served.contains(resource.plural)
            return DiagnosisCheck(
                check: "\(resource.plural).\(resource.group)", ok: ok,
                detail: ok ? "served" : (problem ?? "not served by cluster.cattle.io/v3"),
                fix: ok
                    ? nil : "install Rancher's CRDs (manifests/crds.yaml, or enable the Authorized Cluster Endpoint so Rancher's agent installs them)"
            )
        }
    }

    // MARK: Rights

    /// One right the service needs, and why.
    struct Right {
        var verb: String
        var group: String
        var resource: String
        var namespaced: Bool
        var why: String

        var rule: String {
            let scope = namespaced ? "Role in the records' namespace" : "ClusterRole"
            return "\(scope): - apiGroups: [\"\(group)\"] resources: [\"\(resource)\"] verbs: [\"\(verb)\"]"
        }
    }

    static func rights(for door: DiagnoseConfiguration.Door) -> [Right] {
        var rights: [Right] = []
        let records: [(String, String, [String], String)] = [
            ("cluster.cattle.io", "clusterauthtokens", ["list", "watch"], "to sync tokens"),
            ("cluster.cattle.io", "clusterauthtokens", ["patch"], "to record lastUsedAt and clear a migrated legacy hash"),
            ("cluster.cattle.io", "clusterauthtokens", ["get"], "to re-read a token while migrating its legacy hash"),
            ("cluster.cattle.io", "clusteruserattributes", ["list", "watch"], "to sync users"),
            ("cluster.cattle.io", "clusteruserattributes", ["patch"], "to set needsRefresh"),
            ("", "secrets", ["list", "watch"], "to sync hash Secrets and the emergency Secret"),
            ("", "secrets", ["get", "create", "update"], "to migrate a legacy hash into its Secret"),
            ("", "configmaps", ["list", "watch"], "to read the refresh setting"),
        ]
        for (group, resource, verbs, why) in records {
            for verb in verbs { rights.append(Right(verb: verb, group: group, resource: resource, namespaced: true, why: why)) }
        }
        if door == .proxy {
            for resource in ["users", "groups", "serviceaccounts"] {
                rights.append(Right(verb: "impersonate", group: "", resource: resource, namespaced: false, why: "to forward as the Rancher user"))
            }
            for resource in ["uids", "userextras/*"] {
                rights.append(
                    Right(
                        verb: "impersonate", group: "authentication.k8s.io", resource: resource, namespaced: false,
                        why: "to forward a client's allowed --as"))
            }
            rights.append(
                Right(
                    verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews", namespaced: false,
                    why: "to ask whether a client's --as is allowed"))
        }
        return rights
    }

    /// Asks the authorizer, for each right, whether the service account has it.
    static func rightChecks(_ configuration: DiagnoseConfiguration, client: KubeClient) async -> [DiagnosisCheck] {
        let account = configuration.serviceAccountParts
        let user = "system:serviceaccount:\(account.namespace):\(account.name)"
        let groups = ["system:serviceaccounts", "system:serviceaccounts:\(account.namespace)", "system:authenticated"]
        var checks: [DiagnosisCheck] = []
        for right in rights(for: configuration.door) {
            var resource = right.resource
            var subresource: String?
            if let slash = resource.firstIndex(of: "/") {
                subresource = String(resource[resource.index(after: slash)...])
                resource = String(resource[..<slash])
            }
            var attributes = ResourceAttributes(
                verb: right.verb, group: right.group, resource: resource, namespace: right.namespaced ? configuration.namespace : nil)
            attributes.subresource = subresource
            let name = "\(right.verb) \(right.resource)\(right.group.isEmpty ? "" : ".\(right.group)")"
            do {
                let allowed = try await client.subjectAccessReview(user: user, groups: groups, attributes: attributes)
                checks.append(
                    DiagnosisCheck(
                        check: name, ok: allowed, detail: allowed ? nil : "missing: needed \(right.why)", fix: allowed ? nil : right.rule))
            } catch {
                // Asking needs `create subjectaccessreviews` for whoever runs diagnose; one answer
                // says it for every right.
                return [
                    DiagnosisCheck(
                        check: "rights of \(account.namespace)/\(account.name)", ok: false,
                        detail: "cannot be checked (a SubjectAccessReview failed: \(error))",
                        fix: "run diagnose as a user who may create subjectaccessreviews.authorization.k8s.io")
                ]
            }
        }
        return checks
    }

    // MARK: Emergency access

    static func emergencyState(_ configuration: DiagnoseConfiguration, client: KubeClient) async throws -> EmergencyState {
        var state = EmergencyState(secret: configuration.emergencySecretName, present: false)
        let data: Data
        do {
            data = try await client.get(.secrets, namespace: configuration.namespace, name: configuration.emergencySecretName)
        } catch let error where error.isNotFound {
            return state
        } catch {
            state.problem = "cannot be read: \(error)"
            return state
        }
        state.present = true
        do {
            let secret = try JSONDecoder().decode(OpaqueSecret.self, from: data)
            let access = try EmergencyAccess(secret: secret, fallbackVersion: "")
            state.keys = access.keys.values.map { EmergencyState.Key(kid: $0.kid, algorithm: $0.algorithm.rawValue) }.sorted { $0.kid < $1.kid }
            state.audience = access.audience
            state.maxLifetimeSeconds = access.maxLifetime
            state.revokedTokenIDs = access.revoked.count
        } catch let error as EmergencyAccess.ParseError {
            state.problem = error.description
        } catch {
            state.problem = "cannot be decoded"
        }
        return state
    }

    // MARK: Records

    /// Every record as the service would sync it, and the objects it could not read.
    static func records(_ configuration: DiagnoseConfiguration, client: KubeClient) async throws -> (RecordSnapshot, [RecordFinding]) {
        var unreadable: [RecordFinding] = []
        func all<T: Decodable & Sendable>(_ resource: APIResource, _ type: T.Type, _ kind: RecordFinding.Kind?) async throws -> [T] {
            let items: [LenientObject<T>]
            do {
                items = try await client.list(resource, namespace: configuration.namespace, as: type).items
            } catch {
                throw Failure(description: "\(resource) cannot be listed in \(configuration.namespace): \(error)")
            }
            var objects: [T] = []
            for item in items {
                switch item.result {
                case .success(let object): objects.append(object)
                case .failure(let error):
                    if let kind { unreadable.append(RecordFinding(kind: kind, name: item.name, reason: .unreadable, detail: error.message)) }
                }
            }
            return objects
        }
        let tokens = try await all(.clusterAuthTokens, ClusterAuthToken.self, .clusterAuthToken)
        let users = try await all(.clusterUserAttributes, ClusterUserAttribute.self, .clusterUserAttribute)
        let secrets = try await all(.secrets, HashSecret.self, .secret)
        let configMaps = try await all(.configMaps, RefreshConfigMap.self, nil)
        let refresh = configMaps.first { $0.metadata.name == RefreshPeriod.configMapName }
        let snapshot = RecordSnapshot(
            tokens: RecordTable(tokens),
            users: Dictionary(users.map { ($0.name, UserRecord($0)) }, uniquingKeysWith: { _, last in last }),
            hashSecrets: RecordTable(secrets), refreshConfigMap: refresh)
        return (snapshot, unreadable)
    }

    // MARK: Summary

    static func problems(of report: DiagnosisReport) -> [String] {
        var problems: [String] = []
        for check in report.api where !check.ok { problems.append("\(check.check): \(check.detail ?? "not served")") }
        for check in report.rights where !check.ok {
            problems.append("service account \(report.serviceAccount) \(check.check): \(check.detail ?? "missing")")
        }
        if let emergency = report.emergency, let problem = emergency.problem {
            problems.append("emergency Secret \(emergency.secret): \(problem) (emergency access is off)")
        }
        if let token = report.token, !token.answer.authenticated {
            problems.append(
                "token \(ObjectName.forLog(token.name)) would be refused even with its correct secret: \(token.answer.reason ?? "refused")")
        }
        for finding in report.census?.problems ?? [] {
            problems.append(
                "\(finding.kind.rawValue) \(ObjectName.forLog(finding.name)): \(finding.reason.rawValue)\(finding.detail.map { " (\($0))" } ?? "")")
        }
        return problems
    }
}
