import RancherAuth

/// The field names a message's `Connection` header lists, which are hop-by-hop for that message
/// (RFC 9110 §7.6.1), compared in any ASCII case; bytes outside ASCII compare exactly (no Unicode
/// case folding or equivalence).
///
/// A short list (the usual `keep-alive`, `close` or `Upgrade`) is searched in order. Past
/// `orderedLimit` names the list is hashed, so its cost is the sum of names and fields, not their
/// product. Measured (`BENCH_PARTS=hostile bash bench/proxy`): a request head that fills its
/// 16 KiB with a `Connection` header naming 2,900 headers plus 95 fields, which anybody can send
/// (no credential: passed through as anonymous), cost the proxy 2,370 µs of CPU with every field
/// compared to every name; 252 µs now, beside 41 µs for a plain GET.
///
/// ASCII names are kept as strings: most fit in a string's inline storage, so listing them
/// allocates nothing per name, and between ASCII strings Swift's equality is byte equality. Names
/// with bytes outside ASCII are kept apart, by their bytes.
package struct ListedFieldNames: Sendable {
    /// The most ASCII names searched in order.
    package static let orderedLimit = 8
    /// Up to `orderedLimit` ASCII names, lowercased, in the order listed.
    private var ordered: [String] = []
    /// Past the limit: the ASCII names, lowercased.
    private var hashed: Set<String>?
    /// The names with bytes outside ASCII (none, in practice), by their ASCII-lowercased bytes.
    private var other: Set<[UInt8]> = []

    package init() {}

    package var isEmpty: Bool { ordered.isEmpty && hashed == nil && other.isEmpty }

    /// Adds a listed name (in any case).
    package mutating func add(_ name: String) {
        add(bytes: name.utf8)
    }

    /// Adds a listed name given as bytes (in any case).
    package mutating func add(_ name: UnsafeRawBufferPointer) {
        add(bytes: name)
    }

    /// Makes room for `count` names in all, when that is past the ordered limit (a caller that
    /// can count a list's elements cheaply saves the set's growth).
    package mutating func reserveCapacity(_ count: Int) {
        guard count > Self.orderedLimit, hashed == nil else { return }
        var set = Set<String>(minimumCapacity: count)
        for name in ordered { set.insert(name) }
        hashed = set
        ordered = []
    }

    /// Whether `name` (in any case) is listed.
    package func contains(_ name: String) -> Bool {
        guard ASCII.isASCII(name) else { return !other.isEmpty && other.contains(name.utf8.map(ASCII.lowercased)) }
        if let hashed { return hashed.contains(Self.lowercased(name.utf8)) }
        return ordered.contains { ASCII.equalsIgnoringCase(name, $0) }
    }

    /// Whether the name given as bytes (in any case) is listed.
    package func contains(_ name: UnsafeRawBufferPointer) -> Bool {
        guard name.allSatisfy({ $0 < 0x80 }) else { return !other.isEmpty && other.contains(name.map(ASCII.lowercased)) }
        if let hashed { return hashed.contains(Self.lowercased(name)) }
        return ordered.contains { listed in
            listed.utf8.count == name.count && zip(listed.utf8, name).allSatisfy { $0 == ASCII.lowercased($1) }
        }
    }

    private mutating func add(bytes: some Collection<UInt8>) {
        guard bytes.allSatisfy({ $0 < 0x80 }) else {
            other.insert(bytes.map(ASCII.lowercased))
            return
        }
        let lowercased = Self.lowercased(bytes)
        if hashed != nil {
            hashed?.insert(lowercased)
        } else if ordered.count < Self.orderedLimit {
            ordered.append(lowercased)
        } else {
            hashed = Set(ordered + [lowercased])
            ordered = []
        }
    }

    /// ASCII `bytes` with capitals made small, as a string (made in place up to 15 bytes).
    private static func lowercased(_ bytes: some Collection<UInt8>) -> String {
        String(unsafeUninitializedCapacity: bytes.count) { buffer in
            for (offset, byte) in bytes.enumerated() { buffer[offset] = ASCII.lowercased(byte) }
            return bytes.count
        }
    }
}
