import ArgumentParser
import Foundation
import KubeAPIAuth
import KubeAPIAuthCore
import Logging
import RancherAuth

struct EmergencyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emergency",
        abstract: "Emergency access when Rancher is gone for good: signing keys, short-lived tokens, revocations.",
        discussion: """
            Ahead of time: `emergency keygen` writes a private key (keep it offline) and prints the \
            Secret with its public half; apply that Secret to the cluster. When Rancher is gone and an \
            on-call engineer needs access: `emergency issue --user <Rancher user id>` prints a signed \
            token that kube-api-auth accepts for that existing user, with the groups of its \
            ClusterUserAttribute, until it expires. `emergency revoke <jti>` withdraws one.
            """,
        subcommands: [Keygen.self, Issue.self, Revoke.self])

    enum KeyAlgorithm: String, ExpressibleByArgument, CaseIterable {
        case ed25519, es256

        var algorithm: EmergencyAccess.Algorithm { self == .ed25519 ? .eddsa : .es256 }
    }

    struct Keygen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new signing key and print the Secret that lists its public half.",
            discussion: """
                The private key file (PEM, mode 0600) is never overwritten. To rotate keys, generate \
                a new one and add its JWK to the Secret's jwks beside the old one; remove the old one \
                once no token it signed is needed (removing a key revokes every token it signed).
                """)

        @ParentCommand var root: KubeAPIAuthCommand

        @Option(help: ArgumentHelp("Where to write the private key (PEM, mode 0600).", valueName: "path"))
        var privateKey: String

        @Option(help: "Key type: ed25519 (EdDSA) or es256 (ECDSA P-256).")
        var algorithm: KeyAlgorithm = .ed25519

        @Option(help: ArgumentHelp("What every token's aud must be; name the cluster, e.g. kube-api-auth:prod-eu-1.", valueName: "text"))
        var audience = "kube-api-auth"

        @Option(help: ArgumentHelp("Longest token lifetime the cluster accepts, e.g. 4h or 90m.", valueName: "duration"))
        var maxTtl = "8h"

        @Option(help: ArgumentHelp("Name of the Secret.", valueName: "name"))
        var secretName = EmergencyAccess.defaultSecretName

        func validate() throws {
            guard case .seconds = TokenLifetime(parsing: maxTtl) else {
                throw ValidationError("--max-ttl \"\(maxTtl)\" is not a duration like 4h or 90m")
            }
            guard !audience.isEmpty else { throw ValidationError("--audience must not be empty") }
            guard !FileManager.default.fileExists(atPath: privateKey) else {
                throw ValidationError("--private-key \(privateKey) exists; it is never overwritten (move it away first)")
            }
        }

        func run() throws {
            let key = EmergencyAdmin.SigningKey.generate(algorithm.algorithm)
            do {
                try AtomicFile.write(Data(key.pemRepresentation.utf8), to: privateKey)
            } catch {
                throw ValidationError("--private-key: \(error)")
            }
            print(
                try EmergencyAdmin.secretManifest(
                    name: secretName, namespace: root.global.namespace, keys: [key.publicJWK], audience: audience, maxTTL: maxTtl),
                terminator: "")
            ProcessEnvironment.printError("wrote private key \(privateKey) (kid \(key.kid)); keep it offline")
        }
    }

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a signed emergency token for an existing Rancher user.",
            discussion: """
                The token names the user only: kube-api-auth answers with the groups of the user's \
                ClusterUserAttribute, and refuses it if the user is disabled or absent. The TTL is \
                checked against the cluster's limit when the Secret can be read (--secret-file, or the \
                cluster of --kubeconfig / $KUBECONFIG / in-cluster). The token is printed on standard \
                output; its id (jti, for revoking) on standard error.
                """)

        @ParentCommand var root: KubeAPIAuthCommand

        @Option(help: ArgumentHelp("The private key written by emergency keygen.", valueName: "path"))
        var privateKey: String

        @Option(help: ArgumentHelp("Rancher user id, e.g. u-abc12 (its ClusterUserAttribute must exist).", valueName: "id"))
        var user: String

        @Option(help: ArgumentHelp("How long the token lives, e.g. 4h or 90m.", valueName: "duration"))
        var ttl = "4h"

        @Option(help: ArgumentHelp("Why access is needed (goes into the token and the audit log).", valueName: "text"))
        var reason: String

        @Option(help: ArgumentHelp("The cluster's audience (default: the Secret's, else kube-api-auth).", valueName: "text"))
        var audience: String?

        @Option(help: ArgumentHelp("A manifest file holding the emergency Secret, to check the TTL limit offline.", valueName: "path"))
        var secretFile: String?

        @Option(help: ArgumentHelp("Name of the Secret.", valueName: "name"))
        var secretName = EmergencyAccess.defaultSecretName

        func validate() throws {
            guard case .seconds = TokenLifetime(parsing: ttl) else {
                throw ValidationError("--ttl \"\(ttl)\" is not a duration like 4h or 90m")
            }
            guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason must say why") }
            guard !user.isEmpty else { throw ValidationError("--user must name a Rancher user") }
        }

        func run() async throws {
            guard case .seconds(let lifetime) = TokenLifetime(parsing: ttl) else { return }
            let pem: String
            do {
                pem = try String(contentsOfFile: privateKey, encoding: .utf8)
            } catch {
                throw ValidationError("--private-key \(privateKey) cannot be read")
            }
            let key: EmergencyAdmin.SigningKey
            do {
                key = try EmergencyAdmin.SigningKey(pem: pem)
            } catch {
                throw ValidationError("--private-key \(privateKey): \(error)")
            }
            let access = try await clusterSettings()
            if access == nil { ProcessEnvironment.printError("note: the emergency Secret could not be read; the TTL limit was not checked") }
            let signedAudience: String
            do {
                signedAudience = try EmergencyAdmin.checkIssuance(key: key, lifetime: lifetime, audience: audience, cluster: access)
            } catch {
                throw ValidationError(error.description)
            }
            let (token, jti) = try await EmergencyAdmin.issue(
                key: key, user: user, lifetime: lifetime, reason: reason, audience: signedAudience, now: SystemClock().now())
            print(token)
            ProcessEnvironment.printError("issued jti \(jti) for \(user), valid for \(ttl)")
        }

        /// The cluster's settings from --secret-file, else from the cluster; `nil` when neither can be read.
        private func clusterSettings() async throws -> EmergencyAccess? {
            if let secretFile {
                let url = URL(fileURLWithPath: secretFile)
                let directory = RecordsDirectory(
                    path: url.deletingLastPathComponent().path, namespace: root.global.namespace, emergencySecretName: secretName)
                let records = directory.parseFile(named: url.lastPathComponent)
                if let problem = records.problems.first { throw ValidationError("--secret-file \(problem)") }
                guard let access = records.emergency else { throw ValidationError("--secret-file \(secretFile) holds no Secret \(secretName)") }
                return access
            }
            do {
                return try await EmergencyAdmin.read(
                    secret: secretName, namespace: root.global.namespace, kubeconfig: root.global.effectiveKubeconfig,
                    logger: Logger(label: "kube-api-auth"))
            } catch {
                ProcessEnvironment.printError("note: \(error)")
                return nil
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke an emergency token by its id: print the patch, or apply it with --apply.",
            discussion: "The patch adds revoked.<jti> to the Secret; kube-api-auth refuses the token once it has synced the change.")

        @ParentCommand var root: KubeAPIAuthCommand

        @Argument(help: ArgumentHelp("The token id printed by emergency issue.", valueName: "jti"))
        var jti: String

        @Option(help: ArgumentHelp("A note kept with the revocation.", valueName: "text"))
        var reason = "revoked"

        @Flag(help: "Patch the Secret through --kubeconfig / $KUBECONFIG / in-cluster instead of printing the command.")
        var apply = false

        @Option(help: ArgumentHelp("Name of the Secret.", valueName: "name"))
        var secretName = EmergencyAccess.defaultSecretName

        func run() async throws {
            let patch: String
            do {
                patch = try EmergencyAdmin.revocationPatch(jti: jti, note: "\(RFC3339.format(SystemClock().now())) \(reason)")
            } catch {
                throw ValidationError("\(error)")
            }
            let namespace = root.global.namespace
            guard apply else {
                print("kubectl -n \(namespace) patch secret \(secretName) --type merge -p '\(patch.replacingOccurrences(of: "'", with: "'\\''"))'")
                return
            }
            do {
                try await EmergencyAdmin.apply(
                    patch: patch, secret: secretName, namespace: namespace, kubeconfig: root.global.effectiveKubeconfig,
                    logger: Logger(label: "kube-api-auth"))
            } catch {
                ProcessEnvironment.printError("error: \(error)")
                throw ExitCode.failure
            }
            ProcessEnvironment.printError("revoked \(jti) in Secret \(namespace)/\(secretName)")
        }
    }
}
