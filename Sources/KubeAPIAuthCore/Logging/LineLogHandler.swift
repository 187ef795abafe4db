import Foundation
import Logging
import RancherAuth

/// One line per event, to standard error: logfmt for people (`time=… level=… msg="…" key=value`,
/// close to the Go service's logrus text format) or JSON for collectors.
public struct LineLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    let format: Format
    private let output: @Sendable (String) -> Void

    public init(
        label: String, level: Logger.Level, format: Format = .text,
        output: @escaping @Sendable (String) -> Void = LineLogHandler.standardError
    ) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.output = output
    }

    /// Standard error through ``LogQueue/standardError``: written by the queue's thread while the
    /// service runs, so no review waits for a log write.
    public static let standardError: @Sendable (String) -> Void = { line in
        LogQueue.standardError.write(line)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        switch format {
        case .text:
            var line = "time=\(Self.timestamp()) level=\(Self.levelName(event.level)) msg=\(Self.quoted(event.message.description))"
            for key in merged.keys.sorted() {
                line += " \(key)=\(Self.quoted("\(merged[key]!)"))"
            }
            output(line + "\n")
        case .json:
            var bytes: [UInt8] = Array(#"{"time":"#.utf8)
            JSONWriter.appendString(Self.timestamp(), to: &bytes)
            bytes += Array(#","level":"#.utf8)
            JSONWriter.appendString(Self.levelName(event.level), to: &bytes)
            bytes += Array(#","msg":"#.utf8)
            JSONWriter.appendString(event.message.description, to: &bytes)
            for key in merged.keys.sorted() where !["time", "level", "msg"].contains(key) {
                bytes.append(UInt8(ascii: ","))
                JSONWriter.appendString(key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                JSONWriter.appendString("\(merged[key]!)", to: &bytes)
            }
            bytes += Array("}\n".utf8)
            output(String(decoding: bytes, as: UTF8.self))
        }
    }

    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace: return "trace"
        case .debug: return "debug"
        case .info: return "info"
        case .notice: return "info"
        case .warning: return "warning"
        case .error: return "error"
        case .critical: return "fatal"
        }
    }

    /// Values with spaces, quotes, `=` or control characters are quoted and escaped.
    static func quoted(_ value: String) -> String {
        let needsQuotes =
            value.isEmpty
            || value.unicodeScalars.contains { scalar in
                scalar == " " || scalar == "\"" || scalar == "=" || scalar == "\\" || scalar.value < 0x20 || scalar.value == 0x7F
            }
        guard needsQuotes else { return value }
        var escaped = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    escaped += String(format: "\\u%04x", scalar.value)
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return escaped + "\""
    }

    static func timestamp() -> String {
        RFC3339.format(SystemClock().now().truncatedToSeconds)
    }
}
