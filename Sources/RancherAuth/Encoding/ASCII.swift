/// ASCII helpers shared by the parsers and the proxy's header rules. The comparisons work on UTF-8
/// bytes and allocate nothing: HTTP header names are ASCII (the decoders refuse anything else), and
/// Go clients send them capitalized (`Authorization`), so lowercasing each name into a new string —
/// what the proxy did per header per request — is work a comparison does not need.
public enum ASCII {
    /// The value of a hexadecimal digit (either case), or `nil`.
    public static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// `byte` with an ASCII capital letter made small; any other byte as it is.
    @inlinable
    public static func lowercased(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    /// Whether `text` is `lowercase` with ASCII letters in either case. `lowercase` must be in
    /// lowercase already (the callers pass literals); bytes outside ASCII compare exactly.
    @inlinable
    public static func equalsIgnoringCase(_ text: some StringProtocol, _ lowercase: some StringProtocol) -> Bool {
        text.utf8.count == lowercase.utf8.count && hasPrefixIgnoringCase(text, lowercase)
    }

    /// Whether `text` starts with `lowercasePrefix` with ASCII letters in either case (the prefix
    /// in lowercase, as for ``equalsIgnoringCase(_:_:)``).
    @inlinable
    public static func hasPrefixIgnoringCase(_ text: some StringProtocol, _ lowercasePrefix: some StringProtocol) -> Bool {
        var bytes = text.utf8.makeIterator()
        for expected in lowercasePrefix.utf8 {
            guard let byte = bytes.next(), lowercased(byte) == expected else { return false }
        }
        return true
    }

    /// Whether every byte of `text` is ASCII.
    @inlinable
    public static func isASCII(_ text: some StringProtocol) -> Bool {
        text.utf8.allSatisfy { $0 < 0x80 }
    }

    /// `text` without the spaces and tabs around it (HTTP's optional whitespace). On ASCII text
    /// this is exactly Foundation's `trimmingCharacters(in: .whitespaces)`, which also trims
    /// Unicode's other space separators.
    public static func trimmingSpacesAndTabs(_ text: Substring) -> Substring {
        let isBlank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        let utf8 = text.utf8
        guard let first = utf8.firstIndex(where: { !isBlank($0) }), let last = utf8.lastIndex(where: { !isBlank($0) }) else {
            return text[text.endIndex...]
        }
        return text[first...last]
    }
}
