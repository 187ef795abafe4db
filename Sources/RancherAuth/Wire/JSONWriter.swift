/// Appends JSON text to a byte array with Go `encoding/json` escaping: `"`, `\` and control
/// characters escaped, `<`, `>`, `&`, U+2028 and U+2029 as `\u00XX`/`\u20XX`, and `/` left alone
/// (group IDs such as `github_team://123` must read as written).
public enum JSONWriter {
    private static let hex = Array("0123456789abcdef".utf8)

    public static func appendString(_ value: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var iterator = value.utf8.makeIterator()
        while let byte = iterator.next() {
            // U+2028 / U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
            if byte == 0xE2 {
                let second = iterator.next()
                let third = second == nil ? nil : iterator.next()
                if second == 0x80, let third, third == 0xA8 || third == 0xA9 {
                    output.append(contentsOf: Array("\\u202".utf8))
                    output.append(third == 0xA8 ? UInt8(ascii: "8") : UInt8(ascii: "9"))
                } else {
                    output.append(byte)
                    if let second { output.append(second) }
                    if let third { output.append(third) }
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): output.append(contentsOf: [0x5C, 0x5C])
            case UInt8(ascii: "\n"): output.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): output.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): output.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x00..<0x20, UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "&"):
                output.append(contentsOf: Array("\\u00".utf8))
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0xF)])
            default:
                output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    public static func appendRaw(_ text: StaticString, to output: inout [UInt8]) {
        text.withUTF8Buffer { output.append(contentsOf: $0) }
    }

    /// `["a","b"]`.
    public static func appendStringArray(_ values: [String], to output: inout [UInt8]) {
        output.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            appendString(value, to: &output)
        }
        output.append(UInt8(ascii: "]"))
    }
}
