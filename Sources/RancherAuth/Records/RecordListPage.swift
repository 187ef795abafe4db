/// Reads one page of a Kubernetes list of records (`{"metadata":{…},"items":[…]}`) straight from
/// its bytes, in one pass and without a tree of the document.
///
/// Why: syncing 100,000 tokens and 100,000 Secrets spent two thirds of the service's CPU in
/// Foundation's `JSONDecoder` (generic containers and metadata lookups per field), and the list is
/// what stands between a start and `/readyz` (docs/benchmarks.md).
///
/// The contract is exactness or nothing: a page comes back exactly as `JSONDecoder` decodes it
/// through the records' `Decodable` inits (the same initializers, the same defaults for absent and
/// `null` fields, the same checks of `lastUsedAt` and base64), or `nil`, and the caller decodes the
/// page with `JSONDecoder`. `nil` is the answer to everything this reader does not settle itself:
/// anything but strict RFC 8259 (where `JSONDecoder` is lenient — leading zeros, trailing commas,
/// control characters, a byte-order mark — or strict), invalid UTF-8, escapes in a value or key it
/// reads, a field given twice (`JSONDecoder` keeps the first, Go the last), a value of another type,
/// an item its record cannot be made from, nesting deeper than 64. Kubernetes writes none of these,
/// so a page from the API is read here; `RecordListPageTests` and the `FuzzRecordListPage` target
/// hold the two readings to each other.
public enum RecordListPage {
    public struct Page<Record: Sendable>: Sendable {
        public var items: [Record]
        /// `metadata.resourceVersion`, when present and not `null`.
        public var resourceVersion: String?
        /// `metadata.continue`, when present and not `null` (empty on the last page).
        public var continueToken: String?
    }

    public static func tokens(_ bytes: UnsafeRawBufferPointer) -> Page<ClusterAuthToken>? {
        read(bytes, item: readToken)
    }

    public static func hashSecrets(_ bytes: UnsafeRawBufferPointer) -> Page<HashSecret>? {
        read(bytes, item: readHashSecret)
    }

    public static func users(_ bytes: UnsafeRawBufferPointer) -> Page<ClusterUserAttribute>? {
        read(bytes, item: readUser)
    }

    // MARK: Single items (a records directory's List, item by item)

    /// One object's bytes as a `ClusterAuthToken`, exactly as its `Decodable` init reads it, or
    /// `nil` when this reader cannot be sure (then `JSONDecoder` reads it).
    public static func token(_ bytes: UnsafeRawBufferPointer) -> ClusterAuthToken? { readOne(bytes, item: readToken) }

    /// The same for a hash `Secret`.
    public static func hashSecret(_ bytes: UnsafeRawBufferPointer) -> HashSecret? { readOne(bytes, item: readHashSecret) }

    /// The same for a `ClusterUserAttribute`.
    public static func user(_ bytes: UnsafeRawBufferPointer) -> ClusterUserAttribute? { readOne(bytes, item: readUser) }

    private static func readOne<Record>(_ bytes: UnsafeRawBufferPointer, item: ItemReader<Record>) -> Record? {
        var scanner = JSONScanner(bytes: bytes)
        scanner.requiresValidUTF8 = true
        do throws(TokenReviewDecodingError) {
            try scanner.skipWhitespace()
            let record = try item(&scanner, 1)
            try scanner.skipWhitespace()
            return scanner.atEnd ? record : nil
        } catch {
            return nil
        }
    }

    /// Walks one JSON document that is a `kind: …List` (what `kubectl get -o json` writes): calls
    /// `each` with every item's byte range (relative to `bytes`) and its header as
    /// ``ObjectHeader``'s init reads it, or `nil` for an item whose header this reader cannot be
    /// sure of. Returns `false`, having called nothing, for a document that is not such a list or
    /// is not strict JSON (the caller then decodes it whole with `JSONDecoder`).
    ///
    /// A list of 200,000 records decoded whole by `JSONDecoder` held every item's tree and record at
    /// once (a records directory's peak memory); walked here, one item is read at a time.
    public static func forEachListItem(_ bytes: UnsafeRawBufferPointer, _ each: (ObjectHeader?, Range<Int>) -> Void) -> Bool {
        var scanner = JSONScanner(bytes: bytes)
        scanner.requiresValidUTF8 = true
        // Where each item is (16 bytes an item; not the items).
        var items: [Range<Int>]?
        var kind: String?
        do throws(TokenReviewDecodingError) {
            // The whole document first: strict JSON, the top-level fields read once each.
            try scanner.skipWhitespace()
            guard scanner.peek() == UInt8(ascii: "{") else { return false }
            // The list's own header is read as ``ObjectHeader`` reads it (a wrong type there fails
            // the whole document): `apiVersion` a string, `metadata` an object's metadata.
            var seen = Fields(["kind", "items", "apiVersion", "metadata"])
            try scanner.readObject(depth: 1) { (key, scanner) throws(TokenReviewDecodingError) in
                switch try seen.first(key, scanner) {
                case 0:
                    kind = try scanner.readPlainString()
                case 2:
                    _ = try scanner.readPlainString()
                case 3:
                    if !scanner.consumeLiteral("null") { _ = try readMetadata(&scanner, depth: 2) }
                case 1:
                    // `null` items are the decoder's business (no items), not this walker's.
                    var ranges: [Range<Int>] = []
                    try readArray(&scanner, depth: 2) { (scanner) throws(TokenReviewDecodingError) in
                        let start = scanner.index
                        try scanner.skipValue(depth: 3)
                        ranges.append(start..<scanner.index)
                    }
                    items = ranges
                default:
                    try scanner.skipValue(depth: 2)
                }
            }
            try scanner.skipWhitespace()
            guard scanner.atEnd, let kind, kind.hasSuffix("List"), items != nil else { return false }
        } catch {
            return false
        }
        for range in items ?? [] { each(header(UnsafeRawBufferPointer(rebasing: bytes[range])), range) }
        return true
    }

    /// One object's header as ``ObjectHeader``'s init reads it, or `nil` when unsure — including
    /// when anything but whitespace follows the object (`JSONDecoder` refuses such a document).
    public static func header(_ bytes: UnsafeRawBufferPointer) -> ObjectHeader? {
        var scanner = JSONScanner(bytes: bytes)
        scanner.requiresValidUTF8 = true
        var apiVersion: String?
        var kind: String?
        var metadata: ObjectMeta?
        var seen = Fields(["apiVersion", "kind", "metadata"])
        do throws(TokenReviewDecodingError) {
            try readItem(&scanner, depth: 1) { (key, scanner) throws(TokenReviewDecodingError) in
                switch try seen.first(key, scanner) {
                case 0: apiVersion = try scanner.readPlainString()
                case 1: kind = try scanner.readPlainString()
                case 2: metadata = scanner.consumeLiteral("null") ? nil : try readMetadata(&scanner, depth: 2)
                default: try scanner.skipValue(depth: 2)
                }
            }
            try scanner.skipWhitespace()
            guard scanner.atEnd else { return nil }
        } catch {
            return nil
        }
        return ObjectHeader(apiVersion: apiVersion ?? "", kind: kind ?? "", metadata: metadata)
    }

    typealias ItemReader<Record> = (inout JSONScanner, _ depth: Int) throws(TokenReviewDecodingError) -> Record

    static func read<Record>(_ bytes: UnsafeRawBufferPointer, item: ItemReader<Record>) -> Page<Record>? {
        var scanner = JSONScanner(bytes: bytes)
        scanner.requiresValidUTF8 = true
        var page = Page<Record>(items: [], resourceVersion: nil, continueToken: nil)
        do throws(TokenReviewDecodingError) {
            try scanner.skipWhitespace()
            guard scanner.peek() == UInt8(ascii: "{") else { return nil }
            var seen = Fields(["metadata", "items"])
            try scanner.readObject(depth: 1) { (key, scanner) throws(TokenReviewDecodingError) in
                switch try seen.first(key, scanner) {
                case 0:
                    try readListMetadata(&scanner, into: &page)
                case 1:
                    if scanner.consumeLiteral("null") { return }
                    try readArray(&scanner, depth: 2) { (scanner) throws(TokenReviewDecodingError) in
                        page.items.append(try item(&scanner, 3))
                    }
                default:
                    try scanner.skipValue(depth: 2)
                }
            }
            try scanner.skipWhitespace()
            guard scanner.atEnd else { return nil }
        } catch {
            return nil
        }
        return page
    }

    /// Which of the fields a reader takes a key is, once each: a second occurrence, or a key written
    /// with escapes, stops the reading.
    struct Fields {
        private let names: [StaticString]
        private var seen: UInt32 = 0

        init(_ names: [StaticString]) {
            self.names = names
        }

        /// The index of `key` among the names, or `nil` for a field that is not read.
        mutating func first(_ key: JSONKey, _ scanner: JSONScanner) throws(TokenReviewDecodingError) -> Int? {
            guard key.isPlain else { throw scanner.syntaxError("a key with escapes") }
            guard let index = names.firstIndex(where: { key.equals($0) }) else { return nil }
            guard seen & 1 << index == 0 else { throw scanner.syntaxError("a field given twice") }
            seen |= 1 << index
            return index
        }
    }

    private static func readListMetadata<Record>(_ scanner: inout JSONScanner, into page: inout Page<Record>) throws(TokenReviewDecodingError) {
        if scanner.consumeLiteral("null") { return }
        guard scanner.peek() == UInt8(ascii: "{") else { throw scanner.syntaxError("expected an object") }
        var seen = Fields(["resourceVersion", "continue"])
        try scanner.readObject(depth: 2) { (key, scanner) throws(TokenReviewDecodingError) in
            switch try seen.first(key, scanner) {
            case 0: page.resourceVersion = try scanner.readPlainString()
            case 1: page.continueToken = try scanner.readPlainString()
            default: try scanner.skipValue(depth: 3)
            }
        }
    }

    /// `[ value, … ]` at `depth`, calling `element` with the scanner at each value.
    private static func readArray(
        _ scanner: inout JSONScanner, depth: Int, element: (inout JSONScanner) throws(TokenReviewDecodingError) -> Void
    ) throws(TokenReviewDecodingError) {
        guard depth <= TokenReviewDecoder.maxDepth, scanner.peek() == UInt8(ascii: "[") else { throw scanner.syntaxError("expected an array") }
        scanner.index += 1
        try scanner.skipWhitespace()
        if scanner.peek() == UInt8(ascii: "]") {
            scanner.index += 1
            return
        }
        while true {
            try scanner.skipWhitespace()
            try element(&scanner)
            try scanner.skipWhitespace()
            guard let next = scanner.peek() else { throw scanner.syntaxError("unterminated array") }
            scanner.index += 1
            if next == UInt8(ascii: "]") { return }
            guard next == UInt8(ascii: ",") else { throw scanner.syntaxError("expected ',' or ']'") }
        }
    }

    /// An item's object, each key handed to `member` (the item must be an object: anything else
    /// fails its `Decodable` init, which is left to `JSONDecoder`).
    private static func readItem(
        _ scanner: inout JSONScanner, depth: Int, member: (JSONKey, inout JSONScanner) throws(TokenReviewDecodingError) -> Void
    ) throws(TokenReviewDecodingError) {
        guard scanner.peek() == UInt8(ascii: "{") else { throw scanner.syntaxError("an item that is not an object") }
        try scanner.readObject(depth: depth, member: member)
    }

    /// `metadata` as ``ObjectMeta``'s init reads it (absent or `null`: a name of "").
    private static func readMetadata(_ scanner: inout JSONScanner, depth: Int) throws(TokenReviewDecodingError) -> ObjectMeta {
        if scanner.consumeLiteral("null") { return ObjectMeta(name: "") }
        var name: String?
        var namespace: String?
        var resourceVersion: String?
        var seen = Fields(["name", "namespace", "resourceVersion"])
        try readItem(&scanner, depth: depth) { (key, scanner) throws(TokenReviewDecodingError) in
            switch try seen.first(key, scanner) {
            case 0: name = try scanner.readPlainString()
            case 1: namespace = try scanner.readPlainString()
            case 2: resourceVersion = try scanner.readPlainString()
            default: try scanner.skipValue(depth: depth + 1)
            }
        }
        return ObjectMeta(name: name ?? "", namespace: namespace, resourceVersion: resourceVersion)
    }

    /// A `ClusterAuthToken` as `ClusterAuthToken.init(from:)` reads it.
    static func readToken(_ scanner: inout JSONScanner, depth: Int) throws(TokenReviewDecodingError) -> ClusterAuthToken {
        var metadata: ObjectMeta?
        var userName: String?
        var enabled: Bool?
        var expiresAt: String?
        var lastUsed: String?
        var hash: String?
        var seen = Fields(["metadata", "userName", "enabled", "expiresAt", "lastUsedAt", "hash"])
        try readItem(&scanner, depth: depth) { (key, scanner) throws(TokenReviewDecodingError) in
            switch try seen.first(key, scanner) {
            case 0: metadata = try readMetadata(&scanner, depth: depth + 1)
            case 1: userName = try scanner.readPlainString()
            case 2: enabled = try scanner.readNullableBool()
            case 3: expiresAt = try scanner.readPlainString()
            case 4: lastUsed = try scanner.readPlainString()
            case 5: hash = try scanner.readPlainString()
            default: try scanner.skipValue(depth: depth + 1)
            }
        }
        var lastUsedAt: Timestamp?
        if let lastUsed, !lastUsed.isEmpty {
            // The init refuses such a record (RecordFieldError): left to it.
            guard let parsed = RFC3339.parse(lastUsed) else { throw scanner.syntaxError("lastUsedAt is not an RFC 3339 time") }
            lastUsedAt = parsed
        }
        return ClusterAuthToken(
            metadata: metadata ?? ObjectMeta(name: ""), userName: userName ?? "", enabled: enabled ?? false, expiresAt: expiresAt ?? "",
            lastUsedAt: lastUsedAt, legacyHash: hash ?? "")
    }

    /// A hash `Secret` as `HashSecret.init(from:)` reads it: `data.hash` base64-decoded, or
    /// `stringData.hash`, which wins.
    static func readHashSecret(_ scanner: inout JSONScanner, depth: Int) throws(TokenReviewDecodingError) -> HashSecret {
        var metadata: ObjectMeta?
        var encoded: String?
        var plain: String?
        var seen = Fields(["metadata", "data", "stringData"])
        try readItem(&scanner, depth: depth) { (key, scanner) throws(TokenReviewDecodingError) in
            switch try seen.first(key, scanner) {
            case 0: metadata = try readMetadata(&scanner, depth: depth + 1)
            case 1: encoded = try readHashEntry(&scanner, depth: depth + 1)
            case 2: plain = try readHashEntry(&scanner, depth: depth + 1)
            default: try scanner.skipValue(depth: depth + 1)
            }
        }
        var hashText = ""
        if let plain {
            hashText = plain
        } else if let encoded {
            guard let decoded = GoBase64.decodePadded(encoded.utf8) else { throw scanner.syntaxError("data.hash is not valid base64") }
            hashText = String(decoding: decoded, as: UTF8.self)
        }
        return HashSecret(metadata: metadata ?? ObjectMeta(name: ""), hash: hashText)
    }

    /// The `hash` entry of a Secret's `data` or `stringData` (`null` or absent: none).
    private static func readHashEntry(_ scanner: inout JSONScanner, depth: Int) throws(TokenReviewDecodingError) -> String? {
        if scanner.consumeLiteral("null") { return nil }
        var hash: String?
        var seen = Fields(["hash"])
        try readItem(&scanner, depth: depth) { (key, scanner) throws(TokenReviewDecodingError) in
            switch try seen.first(key, scanner) {
            case 0: hash = try scanner.readPlainString()
            default: try scanner.skipValue(depth: depth + 1)
            }
        }
        return hash
    }

    /// A `ClusterUserAttribute` as `ClusterUserAttribute.init(from:)` reads it.
    static func readUser(_ scanner: inout JSONScanner, depth: Int) throws(TokenReviewDecodingError) -> ClusterUserAttribute {
        var metadata: ObjectMeta?
        var groups: [String]?
        var enabled: Bool?
        var needsRefresh: Bool?
        var lastRefresh: String?
        var seen = Fields(["metadata", "groups", "enabled", "needsRefresh", "lastRefresh"])
        try readItem(&scanner, depth: depth) { (key, scanner) throws(TokenReviewDecodingError) in
            switch try seen.first(key, scanner) {
            case 0: metadata = try readMetadata(&scanner, depth: depth + 1)
            case 1: groups = try scanner.readNullableStringArray(depth: depth + 1)
            case 2: enabled = try scanner.readNullableBool()
            case 3: needsRefresh = try scanner.readNullableBool()
            case 4: lastRefresh = try scanner.readPlainString()
            default: try scanner.skipValue(depth: depth + 1)
            }
        }
        return ClusterUserAttribute(
            metadata: metadata ?? ObjectMeta(name: ""), groups: groups ?? [], enabled: enabled ?? false, needsRefresh: needsRefresh ?? false,
            lastRefresh: lastRefresh ?? "")
    }
}
