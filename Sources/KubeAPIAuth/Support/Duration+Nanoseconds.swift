extension Duration {
    /// The whole duration in nanoseconds (for clocks and jitter that count in them).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
