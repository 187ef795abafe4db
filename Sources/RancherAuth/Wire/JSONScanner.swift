/// An object key as it appears in the input: raw bytes when it has no escapes, decoded otherwise.
struct JSONKey {
    var bytes: UnsafeRawBufferPointer
    var decoded: [UInt8]?

    /// ASCII case-insensitive comparison with a lowercase-or-camel field name (Go's fold match).
    func matches(_ name: StaticString) -> Bool {
        name.withUTF8Buffer { expected in
            if let decoded { return decoded.withUnsafeBytes { Self.equalFold($0, expected) } }
            return Self.equalFold(bytes, expected)
        }
    }

    /// Exact comparison with a field name, as `JSONDecoder` matches keys. A key written with
    /// escapes never matches here (the list-page reader stops at one; see ``isPlain``).
    func equals(_ name: StaticString) -> Bool {
        decoded == nil && name.withUTF8Buffer { expected in bytes.elementsEqual(expected) }
    }

    /// Whether the key was written without escapes.
    var isPlain: Bool { decoded == nil }

    static func equalFold(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeBufferPointer<UInt8>) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for index in 0..<lhs.count where lhs[index] | 0x20 != rhs[index] | 0x20 {
            return false
        }
        return true
    }
}

/// A strict one-pass JSON reader (RFC 8259) over bytes, without an intermediate tree: the
/// TokenReview decoder and the records' list-page reader walk a document with it, materialising
/// only the fields they read and validating everything they skip. Errors are
/// ``TokenReviewDecodingError``s (its first user's type; the list-page reader only needs to know
/// that reading stopped).
struct JSONScanner {
    let bytes: UnsafeRawBufferPointer
    var index = 0
    /// Whether a string that is not valid UTF-8 stops the reading (the list-page reader: what
    /// `JSONDecoder` would make of one is left to it). The TokenReview decoder replaces invalid
    /// UTF-8 with U+FFFD, as Go does.
    var requiresValidUTF8 = false

    var atEnd: Bool { index >= bytes.count }

    func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    func syntaxError(_ detail: String) -> TokenReviewDecodingError {
        TokenReviewDecodingError(.invalidJSON, "request body is not valid JSON: \(detail) at offset \(index)")
    }

    mutating func skipWhitespace() throws(TokenReviewDecodingError) {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func expect(_ byte: UInt8) throws(TokenReviewDecodingError) {
        try skipWhitespace()
        guard index < bytes.count, bytes[index] == byte else {
            throw syntaxError("expected '\(Character(Unicode.Scalar(byte)))'")
        }
        index += 1
    }

    mutating func consumeLiteral(_ literal: StaticString) -> Bool {
        literal.withUTF8Buffer { expected in
            guard bytes.count - index >= expected.count else { return false }
            for offset in 0..<expected.count where bytes[index + offset] != expected[offset] { return false }
            index += expected.count
            return true
        }
    }

    /// Reads `{ "key": value, … }`, calling `member` with the scanner positioned at each value.
    mutating func readObject(
        depth: Int, member: (JSONKey, inout JSONScanner) throws(TokenReviewDecodingError) -> Void
    ) throws(TokenReviewDecodingError) {
        guard depth <= TokenReviewDecoder.maxDepth else {
            throw TokenReviewDecodingError(.tooDeep, "request body nests deeper than \(TokenReviewDecoder.maxDepth) levels")
        }
        try expect(UInt8(ascii: "{"))
        try skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            try skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw syntaxError("expected an object key") }
            let key = try readKey()
            try expect(UInt8(ascii: ":"))
            try skipWhitespace()
            try member(key, &self)
            try skipWhitespace()
            guard let next = peek() else { throw syntaxError("unterminated object") }
            index += 1
            if next == UInt8(ascii: "}") { return }
            guard next == UInt8(ascii: ",") else { throw syntaxError("expected ',' or '}'") }
        }
    }

    /// A string, or `nil` for JSON `null`; any other type is a type error.
    mutating func readNullableString(field: String) throws(TokenReviewDecodingError) -> String? {
        if consumeLiteral("null") { return nil }
        guard peek() == UInt8(ascii: "\"") else {
            try skipValue(depth: 3)
            throw TokenReviewDecodingError(.wrongType, "\(field) must be a string")
        }
        let start = index + 1
        if let end = try scanString() {
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        }
        index = start - 1
        return String(decoding: try readEscapedString(), as: UTF8.self)
    }

    mutating func readKey() throws(TokenReviewDecodingError) -> JSONKey {
        let start = index + 1
        if let end = try scanString() {
            return JSONKey(bytes: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), decoded: nil)
        }
        index = start - 1
        return JSONKey(bytes: UnsafeRawBufferPointer(start: nil, count: 0), decoded: try readEscapedString())
    }

    /// Scans a string starting at `"`. Returns the end offset of its content when it has no escapes
    /// (the fast path; invalid UTF-8 is still replaced when the bytes become a `String`); returns `nil` if it needs decoding. Either way the
    /// string is validated and `index` moves past the closing quote.
    mutating func scanString() throws(TokenReviewDecodingError) -> Int? {
        index += 1
        let start = index
        var simple = true
        var nonASCII = false
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                // Escapes are ASCII: the raw bytes are valid UTF-8 exactly when the string is.
                if nonASCII, requiresValidUTF8,
                    String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<index - 1]), as: UTF8.self) == nil
                {
                    throw syntaxError("invalid UTF-8 in string")
                }
                return simple ? index - 1 : nil
            case UInt8(ascii: "\\"):
                simple = false
                index += 1
                guard index < bytes.count else { throw syntaxError("unterminated string") }
                switch bytes[index] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                    UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 1
                case UInt8(ascii: "u"):
                    guard index + 4 < bytes.count,
                        (1...4).allSatisfy({ ASCII.hexValue(bytes[index + $0]) != nil })
                    else { throw syntaxError("invalid \\u escape") }
                    index += 5
                default:
                    throw syntaxError("invalid escape")
                }
            case 0x00..<0x20:
                throw syntaxError("control character in string")
            case 0x80...:
                nonASCII = true
                index += 1
            default:
                index += 1
            }
        }
        throw syntaxError("unterminated string")
    }

    // MARK: Exact reading (the list-page reader)

    /// A string without escapes, or `nil` for JSON `null`. Anything else — another type, a string
    /// with escapes — stops the reading: the caller leaves such a document to `JSONDecoder`.
    mutating func readPlainString() throws(TokenReviewDecodingError) -> String? {
        if consumeLiteral("null") { return nil }
        guard peek() == UInt8(ascii: "\"") else { throw syntaxError("expected a string") }
        let start = index + 1
        guard let end = try scanString() else { throw syntaxError("a string with escapes") }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    /// `true`, `false`, or `nil` for JSON `null`; anything else stops the reading.
    mutating func readNullableBool() throws(TokenReviewDecodingError) -> Bool? {
        if consumeLiteral("true") { return true }
        if consumeLiteral("false") { return false }
        if consumeLiteral("null") { return nil }
        throw syntaxError("expected true, false or null")
    }

    /// An array of strings without escapes, or `nil` for JSON `null`; a `null` element or any other
    /// value stops the reading.
    mutating func readNullableStringArray(depth: Int) throws(TokenReviewDecodingError) -> [String]? {
        if consumeLiteral("null") { return nil }
        guard depth <= TokenReviewDecoder.maxDepth, peek() == UInt8(ascii: "[") else { throw syntaxError("expected an array") }
        index += 1
        var elements: [String] = []
        try skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return elements
        }
        while true {
            try skipWhitespace()
            guard let element = try readPlainString() else { throw syntaxError("null in an array of strings") }
            elements.append(element)
            try skipWhitespace()
            guard let next = peek() else { throw syntaxError("unterminated array") }
            index += 1
            if next == UInt8(ascii: "]") { return elements }
            guard next == UInt8(ascii: ",") else { throw syntaxError("expected ',' or ']'") }
        }
    }

    /// Decodes a string with escapes or non-ASCII bytes (already validated by `scanString`).
    mutating func readEscapedString() throws(TokenReviewDecodingError) -> [UInt8] {
        index += 1
        var output: [UInt8] = []
        var raw: [UInt8] = []
        func flushRaw() {
            // Re-decoding through String replaces invalid UTF-8 with U+FFFD.
            if !raw.isEmpty {
                output.append(contentsOf: String(decoding: raw, as: UTF8.self).utf8)
                raw.removeAll(keepingCapacity: true)
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                flushRaw()
                return output
            }
            if byte != UInt8(ascii: "\\") {
                raw.append(byte)
                index += 1
                continue
            }
            flushRaw()
            let escape = bytes[index + 1]
            index += 2
            switch escape {
            case UInt8(ascii: "b"): output.append(0x08)
            case UInt8(ascii: "f"): output.append(0x0C)
            case UInt8(ascii: "n"): output.append(0x0A)
            case UInt8(ascii: "r"): output.append(0x0D)
            case UInt8(ascii: "t"): output.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = readHex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate pairs with an immediately following \uDC00–\uDFFF; alone it is U+FFFD.
                    if index + 5 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                        let saved = index
                        index += 2
                        let low = readHex4()
                        if (0xDC00..<0xE000).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            index = saved
                            scalar = 0xFFFD
                        }
                    } else {
                        scalar = 0xFFFD
                    }
                } else if (0xDC00..<0xE000).contains(scalar) {
                    scalar = 0xFFFD
                }
                output.append(contentsOf: String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8)
            default: output.append(escape)  // \" \\ \/
            }
        }
        throw syntaxError("unterminated string")
    }

    private mutating func readHex4() -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            value = value << 4 | UInt32(ASCII.hexValue(bytes[index]) ?? 0)
            index += 1
        }
        return value
    }

    /// Validates and skips any JSON value.
    mutating func skipValue(depth: Int) throws(TokenReviewDecodingError) {
        try skipWhitespace()
        guard let byte = peek() else { throw syntaxError("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"):
            try readObject(depth: depth) { (_, scanner) throws(TokenReviewDecodingError) in
                try scanner.skipValue(depth: depth + 1)
            }
        case UInt8(ascii: "["):
            guard depth <= TokenReviewDecoder.maxDepth else {
                throw TokenReviewDecodingError(.tooDeep, "request body nests deeper than \(TokenReviewDecoder.maxDepth) levels")
            }
            index += 1
            try skipWhitespace()
            if peek() == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                try skipValue(depth: depth + 1)
                try skipWhitespace()
                guard let next = peek() else { throw syntaxError("unterminated array") }
                index += 1
                if next == UInt8(ascii: "]") { return }
                guard next == UInt8(ascii: ",") else { throw syntaxError("expected ',' or ']'") }
            }
        case UInt8(ascii: "\""):
            _ = try scanString()
        case UInt8(ascii: "t"):
            guard consumeLiteral("true") else { throw syntaxError("invalid literal") }
        case UInt8(ascii: "f"):
            guard consumeLiteral("false") else { throw syntaxError("invalid literal") }
        case UInt8(ascii: "n"):
            guard consumeLiteral("null") else { throw syntaxError("invalid literal") }
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try skipNumber()
        default:
            throw syntaxError("unexpected character")
        }
    }

    /// `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`
    mutating func skipNumber() throws(TokenReviewDecodingError) {
        func digits(_ scanner: inout JSONScanner) -> Int {
            let start = scanner.index
            while let byte = scanner.peek(), byte >= 0x30, byte <= 0x39 { scanner.index += 1 }
            return scanner.index - start
        }
        if peek() == UInt8(ascii: "-") { index += 1 }
        if peek() == UInt8(ascii: "0") {
            index += 1
        } else {
            guard digits(&self) > 0 else { throw syntaxError("invalid number") }
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { throw syntaxError("invalid number") }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw syntaxError("invalid number") }
        }
    }
}
