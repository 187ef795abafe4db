/// Reads a `TokenReview` straight from the request bytes.
///
/// It validates the whole document as JSON (RFC 8259) but materialises only `apiVersion`, `kind`
/// and `spec.token`, with Go `encoding/json` semantics for those: keys match case-insensitively,
/// unknown keys are ignored, the last duplicate wins, `null` leaves a field empty, and a value of
/// the wrong type is an error. Invalid UTF-8 inside strings becomes U+FFFD, as in Go.
///
/// One pass, no intermediate tree: Foundation's `JSONDecoder` costs several times the rest of the
/// review path together (docs/benchmarks.md).
public enum TokenReviewDecoder {
    /// Deeper nesting than any TokenReview has is refused rather than recursed into.
    public static let maxDepth = 64

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(TokenReviewDecodingError) -> TokenReviewRequest {
        var scanner = JSONScanner(bytes: bytes)
        var fields = Fields()
        try scanner.skipWhitespace()
        guard let first = scanner.peek() else { throw TokenReviewDecodingError(.invalidJSON, "request body is empty") }
        if first == UInt8(ascii: "{") {
            try scanner.readObject(depth: 1) { (key, scanner) throws(TokenReviewDecodingError) in
                if key.matches("apiVersion") {
                    if let value = try scanner.readNullableString(field: "apiVersion") { fields.apiVersion = value }
                } else if key.matches("kind") {
                    if let value = try scanner.readNullableString(field: "kind") { fields.kind = value }
                } else if key.matches("spec") {
                    try scanner.readSpec(into: &fields)
                } else {
                    try scanner.skipValue(depth: 2)
                }
            }
        } else if scanner.consumeLiteral("null") {
            // Go decodes `null` into the zero value; the kind check below then refuses it.
        } else {
            try scanner.skipValue(depth: 1)
            throw TokenReviewDecodingError(.notAnObject, "request body is not a JSON object")
        }
        try scanner.skipWhitespace()
        guard scanner.atEnd else { throw scanner.syntaxError("unexpected data after the JSON value") }

        guard fields.kind == "TokenReview" else {
            throw TokenReviewDecodingError(.wrongKind, "kind must be TokenReview")
        }
        let apiVersion: TokenReviewAPIVersion
        switch fields.apiVersion {
        case "": apiVersion = .v1beta1
        case TokenReviewAPIVersion.v1.rawValue: apiVersion = .v1
        case TokenReviewAPIVersion.v1beta1.rawValue: apiVersion = .v1beta1
        default:
            throw TokenReviewDecodingError(
                .unsupportedAPIVersion,
                "apiVersion must be authentication.k8s.io/v1 or authentication.k8s.io/v1beta1")
        }
        guard !fields.token.isEmpty else { throw TokenReviewDecodingError(.missingToken, "spec.token is missing") }
        return TokenReviewRequest(apiVersion: apiVersion, token: fields.token)
    }

    public static func decode(_ bytes: [UInt8]) throws(TokenReviewDecodingError) -> TokenReviewRequest {
        // `withUnsafeBytes` rethrows untyped errors, so carry the typed one out in a Result.
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(TokenReviewDecodingError) in try decode(buffer) }
        }
        return try result.get()
    }

    fileprivate struct Fields {
        var apiVersion = ""
        var kind = ""
        var token = ""
    }
}

extension JSONScanner {
    fileprivate mutating func readSpec(into fields: inout TokenReviewDecoder.Fields) throws(TokenReviewDecodingError) {
        if consumeLiteral("null") { return }
        guard peek() == UInt8(ascii: "{") else {
            try skipValue(depth: 2)
            throw TokenReviewDecodingError(.wrongType, "spec must be an object")
        }
        try readObject(depth: 2) { (key, scanner) throws(TokenReviewDecodingError) in
            if key.matches("token") {
                if let value = try scanner.readNullableString(field: "spec.token") { fields.token = value }
            } else {
                try scanner.skipValue(depth: 3)
            }
        }
    }
}
