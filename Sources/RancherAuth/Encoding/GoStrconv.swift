/// Integer parsing with the exact acceptance rules of Go's `strconv`, because they decide which
/// stored hash strings and ConfigMap values are valid (e.g. `$+2:` and `$02:` are version 2).
public enum GoStrconv {
    /// `strconv.Atoi` / `strconv.ParseInt(s, 10, 64)`: an optional `+` or `-`, then one or more
    /// decimal digits (leading zeros allowed); no spaces, no underscores, no base prefixes; the
    /// value must fit in 64 bits. Returns `nil` where Go returns an error.
    public static func parseInt<Bytes: Collection>(_ text: Bytes) -> Int64? where Bytes.Element == UInt8 {
        var index = text.startIndex
        guard index != text.endIndex else { return nil }
        var negative = false
        if text[index] == UInt8(ascii: "+") || text[index] == UInt8(ascii: "-") {
            negative = text[index] == UInt8(ascii: "-")
            index = text.index(after: index)
            guard index != text.endIndex else { return nil }
        }
        // Accumulate as a negative number so that Int64.min parses without overflow.
        var value: Int64 = 0
        while index != text.endIndex {
            let byte = text[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = shifted.subtractingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = next
            index = text.index(after: index)
        }
        if negative { return value }
        return value == Int64.min ? nil : -value
    }

    /// `strconv.Atoi` on a string.
    public static func atoi(_ text: some StringProtocol) -> Int64? {
        parseInt(text.utf8)
    }
}
