/// A Rancher bearer token, `<tokenName>:<secret>` or `ext/<tokenName>:<secret>`.
public struct RancherBearerToken: Sendable {
    /// The ClusterAuthToken (and hash Secret) name: the part before the first `:`, with one
    /// leading `ext/` removed (ext tokens are mirrored under their bare name).
    public let accessKey: Substring
    /// Everything after the first `:`; may contain further `:` and may be empty.
    public let secret: Substring

    /// Splits `token` at its first `:`. Returns `nil` for tokens without one, which are not
    /// Rancher tokens at all (service-account JWTs, other systems' tokens).
    public init?(_ token: String) {
        guard let colon = token.utf8.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        var accessKey = token[..<colon]
        if accessKey.utf8.starts(with: "ext/".utf8) {
            accessKey = accessKey.dropFirst(4)
        }
        self.accessKey = accessKey
        self.secret = token[token.utf8.index(after: colon)...]
    }
}
