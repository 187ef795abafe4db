extension Duration {
    /// The whole duration in nanoseconds (for clocks and jitter that count in them).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Milliseconds to the microsecond, as the proxy's log lines give durations.
    package var logMilliseconds: Double { Double(nanoseconds / 1000) / 1000 }
}
