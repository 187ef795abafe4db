/// The member names of a JSON object's top level, decoded (escapes resolved), in order.
///
/// Foundation's `JSONDecoder` keeps the last of two members with the same name; an emergency
/// token with a duplicated claim (`"sub"` twice, or `"sub"` and `"s\u0075b"`) must be refused
/// instead, because two readers of the same token could then disagree on who it names. This
/// scanner only finds the names; the values are checked by the decoder afterwards.
enum JSONObjectKeys {
    /// `nil` when `bytes` is not one JSON object (with nothing but whitespace after it).
    static func topLevel(_ bytes: [UInt8]) -> [String]? {
        var scanner = Scanner(bytes: bytes)
        guard let keys = scanner.object(), scanner.atEnd() else { return nil }
        return keys
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        var depth = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func skipWhitespace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        mutating func atEnd() -> Bool {
            skipWhitespace()
            return index == bytes.count
        }

        mutating func consume(_ byte: UInt8) -> Bool {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        /// An object; returns its member names.
        mutating func object() -> [String]? {
            guard consume(UInt8(ascii: "{")) else { return nil }
            var keys: [String] = []
            if consume(UInt8(ascii: "}")) { return keys }
            while true {
                skipWhitespace()
                guard let key = string(), consume(UInt8(ascii: ":")), skipValue() else { return nil }
                keys.append(key)
                if consume(UInt8(ascii: ",")) { continue }
                return consume(UInt8(ascii: "}")) ? keys : nil
            }
        }

        /// A string starting at the current byte; returns it decoded.
        mutating func string() -> String? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flush() {
                scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
                raw.removeAll()
            }
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    flush()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    flush()
                    guard index < bytes.count else { return nil }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        guard var code = hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(code), index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        {
                            index += 2
                            guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
                    default: return nil
                    }
                case 0x00..<0x20:
                    return nil
                default:
                    raw.append(byte)
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for byte in bytes[index..<index + 4] {
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            index += 4
            return value
        }

        /// Skips one value of any kind (nesting bounded).
        mutating func skipValue() -> Bool {
            skipWhitespace()
            guard index < bytes.count else { return false }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                return string() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                defer { depth -= 1 }
                guard depth <= 32 else { return false }
                let close = bytes[index] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                let isObject = close == UInt8(ascii: "}")
                index += 1
                if consume(close) { return true }
                while true {
                    if isObject {
                        skipWhitespace()
                        guard string() != nil, consume(UInt8(ascii: ":")) else { return false }
                    }
                    guard skipValue() else { return false }
                    if consume(UInt8(ascii: ",")) { continue }
                    return consume(close)
                }
            default:
                // A number, true, false or null: the decoder validates it; here only its extent matters.
                let start = index
                while index < bytes.count, !",}] \t\r\n".utf8.contains(bytes[index]) { index += 1 }
                return index > start
            }
        }
    }
}
