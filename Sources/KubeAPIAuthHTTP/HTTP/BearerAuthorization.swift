import KubeAPIAuthCore
import RancherAuth

/// The `Authorization` request header.
public enum BearerAuthorization {
    /// `Bearer <token>`, scheme case-insensitive, as kube-apiserver reads it; `nil` for any other
    /// form. Spaces before the scheme and between it and the token are skipped.
    public static func token(_ header: String) -> String? {
        // The proxy reads this for every request: an ASCII header (every real one) is read as
        // bytes; any other keeps the reading by characters it always had.
        guard ASCII.isASCII(header) else { return tokenByCharacters(header) }
        let space = UInt8(ascii: " ")
        let utf8 = header.utf8
        guard let schemeStart = utf8.firstIndex(where: { $0 != space }),
            let schemeEnd = utf8[schemeStart...].firstIndex(of: space),
            ASCII.equalsIgnoringCase(header[schemeStart..<schemeEnd], "bearer"),
            let tokenStart = utf8[schemeEnd...].firstIndex(where: { $0 != space })
        else { return nil }
        return String(header[tokenStart...])
    }

    /// The same reading by characters (``token(_:)`` for a header with non-ASCII bytes).
    private static func tokenByCharacters(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingPrefix(while: { $0 == " " })
        return token.isEmpty ? nil : String(token)
    }
}
