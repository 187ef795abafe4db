import Crypto

/// Kubernetes object names (DNS-1123 subdomains, as `metadata.name` of a ClusterAuthToken or a
/// Secret): dot-separated labels of lowercase letters, digits and `-`, each starting and ending
/// with a letter or digit, at most 253 characters in all.
public enum ObjectName {
    public static let maxLength = 253

    public static func isValid(_ name: some StringProtocol) -> Bool {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
        var previous: UInt8 = UInt8(ascii: ".")
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                break
            case UInt8(ascii: "-"):
                // A label starts with a letter or digit.
                guard previous != UInt8(ascii: ".") else { return false }
            case UInt8(ascii: "."):
                // A label ends with a letter or digit (and is not empty).
                guard previous != UInt8(ascii: "."), previous != UInt8(ascii: "-") else { return false }
            default:
                return false
            }
            previous = byte
        }
        return previous != UInt8(ascii: "-") && previous != UInt8(ascii: ".")
    }

    /// What a log line may say of a token name a client sent. A name that can be an object name is
    /// the public half of a Rancher token (it is in kubeconfigs and the records) and is told as it
    /// is. Anything else is whatever a client put before a `:`, possibly a whole credential of
    /// another kind (an emergency token or a JWT with `:x` appended): it is told as `invalid-name:`
    /// and 16 hex digits of its SHA-256, enough to match repeated lines, impossible to turn back.
    public static func forLog(_ name: some StringProtocol) -> String {
        if isValid(name) { return String(name) }
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        for byte in SHA256.hash(data: Array(name.utf8)).prefix(8) { hex += [digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]] }
        return "invalid-name:" + String(decoding: hex, as: UTF8.self)
    }
}
