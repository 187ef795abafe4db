import Foundation
import KubeAPIAuth
import KubeAPIAuthCore

enum ProcessEnvironment {
    static func value(_ name: String) -> String? { ProcessInfo.processInfo.environment[name] }

    /// All of standard input, with one trailing line ending (`\n` or `\r\n`) removed (`echo secret | …`).
    static func readSecretFromStandardInput() -> String {
        secret(fromInput: Array(FileHandle.standardInput.readDataToEndOfFile()))
    }

    /// `input` without one trailing `\n` or `\r\n`, trimmed as bytes: in Swift `"\r\n"` is one
    /// Character, so trimming a String by count would also take the character before it.
    static func secret(fromInput input: [UInt8]) -> String {
        var bytes = input[...]
        if bytes.last == UInt8(ascii: "\n") {
            bytes.removeLast()
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func printError(_ message: String) {
        DescriptorWriter.standardError.write(message + "\n")
    }
}

/// The configuration the Go service's newer releases read from the environment instead of flags
/// (`CATTLE_DEBUG` or `RANCHER_DEBUG`, `KUBECONFIG`, `CATTLE_NAMESPACE`, `CATTLE_LISTEN`), so that
/// Rancher's DaemonSet works with this image whichever way it configures the container. A flag
/// given on the command line wins over its variable; an empty variable counts as unset.
struct EnvironmentConfiguration {
    let variables: [String: String]

    static let current = EnvironmentConfiguration(variables: ProcessInfo.processInfo.environment)

    /// `flag` when given, else `variable` when set (neither empty).
    func value(flag: String?, variable: String) -> String? {
        if let flag, !flag.isEmpty { return flag }
        if let value = variables[variable], !value.isEmpty { return value }
        return nil
    }

    /// `CATTLE_DEBUG` or `RANCHER_DEBUG` true, as Go's `strconv.ParseBool` reads it (anything it
    /// cannot read is false).
    var debug: Bool {
        ["CATTLE_DEBUG", "RANCHER_DEBUG"].contains { Self.goParseBool(variables[$0] ?? "") == true }
    }

    /// `CATTLE_LISTEN`: the webhook's address, `host:port`.
    var listen: String? { value(flag: nil, variable: "CATTLE_LISTEN") }

    static func goParseBool(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "TRUE", "true", "True": return true
        case "0", "f", "F", "FALSE", "false", "False": return false
        default: return nil
        }
    }
}
