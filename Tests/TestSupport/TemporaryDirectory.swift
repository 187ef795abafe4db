import Foundation

/// A directory for one test, removed with the value (every test target uses this one).
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init() throws {
        path = NSTemporaryDirectory() + "kube-api-auth-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// The path of `name` inside the directory.
    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Writes `contents` to `name` inside the directory.
    public func write(_ name: String, _ contents: String) throws {
        try contents.write(toFile: file(name), atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
