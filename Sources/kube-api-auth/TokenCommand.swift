import ArgumentParser
import Foundation
import KubeAPIAuth
import KubeAPIAuthCore
import RancherAuth

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Mint tokens shaped like Rancher's.", subcommands: [Create.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mint a kubeconfig-style token and write its records.",
            discussion: """
                Writes <records-dir>/<token>.yaml (ClusterAuthToken and hash Secret) and, unless the user \
                already has one elsewhere in the directory, <records-dir>/user-<user>.yaml \
                (ClusterUserAttribute with the --group values). With --output - the three manifests go to \
                standard output instead (for kubectl apply -f -) and the bearer token to standard error.
                The bearer token is always the last line printed.
                """)

        @ParentCommand var root: KubeAPIAuthCommand
        var global: GlobalOptions { root.global }

        @Option(help: ArgumentHelp("Rancher user ID, e.g. u-abc12 (the username kube-apiserver sees).", valueName: "id"))
        var user: String

        @Option(name: .customLong("group"), help: ArgumentHelp("Group principal ID; repeat for several.", valueName: "principal"))
        var groups: [String] = []

        @Option(help: ArgumentHelp("Lifetime such as 720h, 90m, 30d; 0 for a token that never expires.", valueName: "duration"))
        var ttl = "720h"

        @Option(help: "Hash format for the Secret: sha3, sha256 or scrypt.")
        var algorithm: HashAlgorithm = .sha3

        @Option(help: ArgumentHelp("Directory to write the records into.", valueName: "dir"))
        var recordsDir: String?

        @Option(help: ArgumentHelp("\"-\" to print the manifests to standard output instead of writing files.", valueName: "-"))
        var output: String?

        func validate() throws {
            guard TokenLifetime(parsing: ttl) != nil else {
                throw ValidationError("--ttl \"\(ttl)\" is not a duration like 720h, 90m, 1h30m, 30d or 0")
            }
            if let output, output != "-" { throw ValidationError("--output only accepts \"-\" (standard output)") }
            guard (recordsDir == nil) != (output == nil) else {
                throw ValidationError("pass exactly one of --records-dir DIR or --output -")
            }
        }

        func run() throws {
            let token: MintedToken
            do {
                token = try TokenMinting.mint(
                    user: user, groups: groups, lifetime: TokenLifetime(parsing: ttl)!, algorithm: algorithm,
                    now: SystemClock().now())
            } catch {
                throw ValidationError("\(error)")
            }
            let namespace = global.namespace
            let userManifest = RecordManifests.user(id: user, groups: groups, namespace: namespace)
            guard let recordsDir else {
                print(RecordManifests.token(token, namespace: namespace) + "---\n" + userManifest, terminator: "")
                ProcessEnvironment.printError(token.bearerToken)
                return
            }
            let directory = RecordsDirectory(path: recordsDir, namespace: namespace)
            let userFile = "user-\(user).yaml"
            let definedElsewhere = try userDefinitions(in: directory).filter { $0 != userFile }
            if let other = definedElsewhere.first, !groups.isEmpty {
                throw ValidationError(
                    "user \(user) is already defined in \(other); edit its groups there, or mint without --group to keep them")
            }
            let tokenPath = (recordsDir as NSString).appendingPathComponent("\(token.name).yaml")
            try RecordManifests.writeAtomically(RecordManifests.token(token, namespace: namespace), to: tokenPath)
            ProcessEnvironment.printError("wrote \(tokenPath)")
            if definedElsewhere.isEmpty {
                let userPath = (recordsDir as NSString).appendingPathComponent(userFile)
                try RecordManifests.writeAtomically(userManifest, to: userPath)
                ProcessEnvironment.printError("wrote \(userPath)")
            }
            print(token.bearerToken)
        }

        /// The files of the directory that define this user's ClusterUserAttribute.
        private func userDefinitions(in directory: RecordsDirectory) throws -> [String] {
            do {
                return try directory.recordFiles().filter { file in
                    directory.parseFile(named: file).users.contains { $0.name == user }
                }
            } catch {
                throw ValidationError("--records-dir: \(error)")
            }
        }
    }
}
