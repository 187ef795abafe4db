import Foundation
import KubeAPIAuth

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
