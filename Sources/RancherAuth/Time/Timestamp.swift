/// An instant as seconds and nanoseconds since the Unix epoch (UTC).
///
/// The review path compares instants without Foundation: `expiresAt` and `lastRefresh` are parsed
/// once when records change, and "now" comes from an injected clock.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var seconds: Int64
    public var nanoseconds: Int32

    public init(seconds: Int64, nanoseconds: Int32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
    }

    /// The same instant with the sub-second part dropped (Go `Time.Truncate(time.Second)`).
    public var truncatedToSeconds: Timestamp { Timestamp(seconds: seconds, nanoseconds: 0) }

    /// Adds a duration in nanoseconds, wrapping like Go's `time.Time.Add` would not need to:
    /// durations here are bounded by Int64 nanoseconds (±292 years).
    public func adding(nanoseconds duration: Int64) -> Timestamp {
        let total = Int64(nanoseconds) + duration % 1_000_000_000
        var seconds = self.seconds &+ duration / 1_000_000_000
        var nanos = total
        if nanos >= 1_000_000_000 {
            nanos -= 1_000_000_000
            seconds &+= 1
        } else if nanos < 0 {
            nanos += 1_000_000_000
            seconds &-= 1
        }
        return Timestamp(seconds: seconds, nanoseconds: Int32(nanos))
    }

    /// Nanoseconds from this instant to `other` (negative when `other` is earlier), clamped to
    /// ±30 years: enough for any timer, and no overflow whatever the instants.
    public func nanoseconds(until other: Timestamp) -> Int64 {
        let limit: Int64 = 30 * 365 * 86_400
        let (difference, overflow) = other.seconds.subtractingReportingOverflow(seconds)
        let clamped = overflow ? (other.seconds > seconds ? limit : -limit) : max(-limit, min(limit, difference))
        return clamped * 1_000_000_000 + Int64(other.nanoseconds) - Int64(nanoseconds)
    }

    public var description: String { RFC3339.format(self) }
}

/// RFC 3339 timestamps as Rancher writes them and Go's `time.Parse(time.RFC3339, …)` reads them.
public enum RFC3339 {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)` with Go's range checks (month 1–12, day
    /// within the month, hour 0–23, minute and second 0–59, offset hour 0–23). Uppercase `T` and
    /// `Z` are required; fractions beyond nanoseconds are truncated.
    ///
    /// This is Go's canonical RFC 3339 path. Go's general layout parser additionally accepts a few
    /// non-canonical spellings (one-digit hours, `,` before the fraction); those are refused here,
    /// which fails closed: a token whose `expiresAt` cannot be read is refused, never allowed.
    public static func parse(_ text: some StringProtocol) -> Timestamp? {
        parse(bytes: Array(text.utf8))
    }

    public static func parse(bytes s: [UInt8]) -> Timestamp? {
        guard s.count >= 20 else { return nil }
        var ok = true
        func number(_ range: Range<Int>, _ min: Int, _ max: Int) -> Int {
            var value = 0
            for index in range {
                let byte = s[index]
                guard byte >= 0x30, byte <= 0x39 else {
                    ok = false
                    return min
                }
                value = value * 10 + Int(byte - 0x30)
            }
            guard value >= min, value <= max else {
                ok = false
                return min
            }
            return value
        }
        let year = number(0..<4, 0, 9999)
        let month = number(5..<7, 1, 12)
        let day = number(8..<10, 1, daysIn(month: month, year: year))
        let hour = number(11..<13, 0, 23)
        let minute = number(14..<16, 0, 59)
        let second = number(17..<19, 0, 59)
        guard ok, s[4] == UInt8(ascii: "-"), s[7] == UInt8(ascii: "-"), s[10] == UInt8(ascii: "T"),
            s[13] == UInt8(ascii: ":"), s[16] == UInt8(ascii: ":")
        else { return nil }
        var index = 19
        var nanos: Int32 = 0
        if index + 1 < s.count, s[index] == UInt8(ascii: "."), isDigit(s[index + 1]) {
            index += 1
            var digits = 0
            while index < s.count, isDigit(s[index]) {
                if digits < 9 {
                    nanos = nanos * 10 + Int32(s[index] - 0x30)
                    digits += 1
                }
                index += 1
            }
            for _ in digits..<9 { nanos *= 10 }
        }
        var offsetSeconds = 0
        let rest = s.count - index
        if rest == 1, s[index] == UInt8(ascii: "Z") {
            offsetSeconds = 0
        } else {
            guard rest == 6 else { return nil }
            let offsetHours = number(index + 1..<index + 3, 0, 23)
            let offsetMinutes = number(index + 4..<index + 6, 0, 59)
            let sign = s[index]
            guard ok, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-"), s[index + 3] == UInt8(ascii: ":")
            else { return nil }
            offsetSeconds = (offsetHours * 60 + offsetMinutes) * 60
            if sign == UInt8(ascii: "-") { offsetSeconds = -offsetSeconds }
        }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        return Timestamp(seconds: seconds, nanoseconds: nanos)
    }

    /// Formats as UTC with whole seconds, e.g. `2026-01-15T10:00:00Z` (Kubernetes `metav1.Time`).
    public static func format(_ timestamp: Timestamp) -> String {
        let days = timestamp.seconds >= 0 ? timestamp.seconds / 86_400 : (timestamp.seconds - 86_399) / 86_400
        let secondsOfDay = Int(timestamp.seconds - days * 86_400)
        let (year, month, day) = civilFromDays(Int(days))
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondsOfDay / 3600, 2)):"
            + "\(pad(secondsOfDay / 60 % 60, 2)):\(pad(secondsOfDay % 60, 2))Z"
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    private static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

/// Where "now" comes from. The core never reads the clock itself.
public protocol WallClock: Sendable {
    func now() -> Timestamp
}
