/// How long a token lives: `--ttl` of minted tokens, and the longest lifetime of emergency tokens.
public enum TokenLifetime: Sendable, Hashable {
    case unlimited
    case seconds(Int64)

    /// Parses `720h`, `90m`, `1h30m`, `30d`, `45s` or `0` (never expires); `nil` if malformed.
    public init?(parsing text: String) {
        if text == "0" {
            self = .unlimited
            return
        }
        var total: Int64 = 0
        var number: Int64?
        for character in text {
            if character.isASCII, let digit = character.wholeNumberValue {
                let (shifted, overflow) = (number ?? 0).multipliedReportingOverflow(by: 10)
                guard !overflow else { return nil }
                number = shifted + Int64(digit)
                continue
            }
            let unit: Int64
            switch character {
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86_400
            default: return nil
            }
            guard let value = number else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: unit)
            let (sum, overflow2) = total.addingReportingOverflow(product)
            guard !overflow, !overflow2 else { return nil }
            total = sum
            number = nil
        }
        guard number == nil, total > 0 else { return nil }
        self = .seconds(total)
    }
}
