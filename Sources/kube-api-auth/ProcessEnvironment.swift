import Foundation
import KubeAPIAuth

enum ProcessEnvironment {
    static func value(_ name: String) -> String? { ProcessInfo.processInfo.environment[name] }

    /// All of standard input, with one trailing line ending removed (`echo secret | …`).
    static func readSecretFromStandardInput() -> String {
        var text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        if text.hasSuffix("\r\n") {
            text.removeLast(2)
        } else if text.hasSuffix("\n") {
            text.removeLast()
        }
        return text
    }

    static func printError(_ message: String) {
        DescriptorWriter.standardError.write(message + "\n")
    }
}
