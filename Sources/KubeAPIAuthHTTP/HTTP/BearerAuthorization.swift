import KubeAPIAuthCore
import RancherAuth

/// The `Authorization` request header.
public enum BearerAuthorization {
    /// `Bearer <token>`, scheme case-insensitive, as kube-apiserver reads it; `nil` for any other
    /// form. Spaces before the scheme and between it and the token are skipped.
    public static func token(_ header: String) -> String? {
        // The proxy reads this for every request: an ASCII header (every real one) is read as
        // bytes in place; any other keeps the reading by characters it always had.
        var header = header
        let read: String?? = header.withUTF8 { bytes -> String?? in
            guard !bytes.contains(where: { $0 >= 0x80 }) else { return .none }
            let space = UInt8(ascii: " ")
            var index = 0
            while index < bytes.count, bytes[index] == space { index += 1 }
            let schemeStart = index
            while index < bytes.count, bytes[index] != space { index += 1 }
            guard index < bytes.count, index - schemeStart == 6 else { return .some(nil) }
            var expected = schemeStart
            for byte in "bearer".utf8 {
                guard ASCII.lowercased(bytes[expected]) == byte else { return .some(nil) }
                expected += 1
            }
            while index < bytes.count, bytes[index] == space { index += 1 }
            guard index < bytes.count else { return .some(nil) }
            return .some(String(decoding: UnsafeBufferPointer(rebasing: bytes[index...]), as: UTF8.self))
        }
        return read ?? tokenByCharacters(header)
    }

    /// The same reading by characters (``token(_:)`` for a header with non-ASCII bytes).
    private static func tokenByCharacters(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingPrefix(while: { $0 == " " })
        return token.isEmpty ? nil : String(token)
    }
}
