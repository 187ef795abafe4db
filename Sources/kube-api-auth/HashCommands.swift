import ArgumentParser
import RancherAuth

extension HashAlgorithm: ExpressibleByArgument {}

struct HashCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash",
        abstract: "Hash a token secret read from standard input, in a Rancher format.",
        discussion: "Example: printf %s \"$SECRET\" | kube-api-auth hash --algorithm sha3")

    @Option(help: "sha3 ($3, Rancher's current format), sha256 ($2) or scrypt ($1).")
    var algorithm: HashAlgorithm = .sha3

    func run() throws {
        let secret = ProcessEnvironment.readSecretFromStandardInput()
        guard !secret.isEmpty else { throw ValidationError("no secret on standard input") }
        print(try HashCreation.hash(secret: secret, algorithm: algorithm))
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a secret read from standard input against a stored hash.",
        discussion: "Exit status: 0 the secret matches, 1 it does not, 2 the hash is malformed.")

    @Option(help: ArgumentHelp("The stored hash ($1, $2 or $3 format).", valueName: "hash"))
    var hash: String

    func run() throws {
        let secret = ProcessEnvironment.readSecretFromStandardInput()
        switch StoredHash.parse(hash) {
        case .failure(let error):
            ProcessEnvironment.printError("malformed hash: \(error)")
            throw ExitCode(2)
        case .success(let stored):
            guard stored.verify(secret: secret[...]) else {
                ProcessEnvironment.printError("mismatch")
                throw ExitCode(1)
            }
            ProcessEnvironment.printError("match (\(stored.algorithm.rawValue))")
        }
    }
}
