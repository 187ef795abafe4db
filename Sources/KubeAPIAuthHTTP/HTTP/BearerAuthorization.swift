import KubeAPIAuthCore
/// The `Authorization` request header.
public enum BearerAuthorization {
    /// `Bearer <token>`, scheme case-insensitive, as kube-apiserver reads it; `nil` for any other form.
    public static func token(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingPrefix(while: { $0 == " " })
        return token.isEmpty ? nil : String(token)
    }
}
