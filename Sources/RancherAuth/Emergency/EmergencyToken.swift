import Foundation
import JWTKit

/// An emergency token: a compact JWS (`header.payload.signature`, base64url without padding)
/// signed with one of the keys of ``EmergencyAccess``, naming an existing Rancher user.
///
/// Parsed strictly, since it decides who gets into a cluster: exactly three canonical base64url
/// segments; header and payload each one JSON object with no member named twice; no `crit`
/// header; the claims of the right types. The signature is checked by ``EmergencyAccess/Key``
/// against the bytes as sent.
public struct EmergencyToken: Sendable, Equatable {
    public struct Header: Decodable, Sendable, Equatable {
        public var alg: String
        public var kid: String?
        public var typ: String?
        public var crit: [String]?
    }

    /// The claims, as issued (`emergency issue`) and as read. `aud` is one string when issued; a
    /// token may carry a list, which must then hold exactly the cluster's audience.
    public struct Claims: Codable, Sendable, Equatable, JWTPayload {
        public var iss: String
        public var aud: [String]
        public var sub: String
        public var iat: Int64
        public var nbf: Int64
        public var exp: Int64
        public var jti: String
        public var reason: String?

        public init(iss: String, aud: [String], sub: String, iat: Int64, nbf: Int64, exp: Int64, jti: String, reason: String?) {
            self.iss = iss
            self.aud = aud
            self.sub = sub
            self.iat = iat
            self.nbf = nbf
            self.exp = exp
            self.jti = jti
            self.reason = reason
        }

        private enum CodingKeys: String, CodingKey { case iss, aud, sub, iat, nbf, exp, jti, reason }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            iss = try container.decode(String.self, forKey: .iss)
            if let one = try? container.decode(String.self, forKey: .aud) {
                aud = [one]
            } else {
                aud = try container.decode([String].self, forKey: .aud)
            }
            sub = try container.decode(String.self, forKey: .sub)
            iat = try container.decode(Int64.self, forKey: .iat)
            nbf = try container.decode(Int64.self, forKey: .nbf)
            exp = try container.decode(Int64.self, forKey: .exp)
            jti = try container.decode(String.self, forKey: .jti)
            reason = try container.decodeIfPresent(String.self, forKey: .reason)
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(iss, forKey: .iss)
            if aud.count == 1 { try container.encode(aud[0], forKey: .aud) } else { try container.encode(aud, forKey: .aud) }
            try container.encode(sub, forKey: .sub)
            try container.encode(iat, forKey: .iat)
            try container.encode(nbf, forKey: .nbf)
            try container.encode(exp, forKey: .exp)
            try container.encode(jti, forKey: .jti)
            try container.encodeIfPresent(reason, forKey: .reason)
        }

        /// jwt-kit's hook; the rules are ``EmergencyVerification``'s, with the cluster's settings.
        public func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    public let header: Header
    public let claims: Claims
    /// `header.payload`, the bytes the signature covers.
    public let signingInput: [UInt8]
    public let signature: [UInt8]

    /// Longest accepted emergency token; Rancher's own tokens are under 100 bytes.
    public static let maxBytes = 4096

    /// Whether `token` has the shape of a JWS: three non-empty base64url segments and no `:`
    /// (a Rancher token always has one). Cheap: no decoding.
    public static func isCandidate(_ token: String) -> Bool {
        var dots = 0
        var segmentLength = 0
        for byte in token.utf8 {
            if byte == UInt8(ascii: ".") {
                guard segmentLength > 0 else { return false }
                dots += 1
                segmentLength = 0
            } else if isBase64URL(byte) {
                segmentLength += 1
            } else {
                return false
            }
        }
        return dots == 2 && segmentLength > 0
    }

    public enum ParseError: Error, Equatable, Sendable {
        case shape, base64, headerJSON, claimsJSON, duplicateMember, criticalHeader, claimTypes, tooLong
        /// Times outside ``EmergencyAccess/acceptedTimes``, or a `jti` that cannot be revoked.
        case claimValues
    }

    /// The `kid` of a compact JWS's header, read from the first segment alone (`nil` when that
    /// segment is not a readable header or names no key).
    static func keyID(of token: String) -> String? {
        let bytes = token.utf8.prefix(maxBytes)
        guard let end = bytes.firstIndex(of: UInt8(ascii: ".")), let header = Base64URL.decode(bytes[..<end]) else { return nil }
        return (try? JSONDecoder().decode(Header.self, from: Data(header)))?.kid
    }

    public static func parse(_ token: String) throws(ParseError) -> EmergencyToken {
        let bytes = Array(token.utf8)
        guard bytes.count <= maxBytes else { throw .tooLong }
        let segments = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard segments.count == 3, segments.allSatisfy({ !$0.isEmpty }) else { throw .shape }
        guard let headerBytes = Base64URL.decode(segments[0]), let payloadBytes = Base64URL.decode(segments[1]),
            let signature = Base64URL.decode(segments[2])
        else { throw .base64 }
        guard let headerKeys = JSONObjectKeys.topLevel(headerBytes) else { throw .headerJSON }
        guard let claimKeys = JSONObjectKeys.topLevel(payloadBytes) else { throw .claimsJSON }
        guard Set(headerKeys).count == headerKeys.count, Set(claimKeys).count == claimKeys.count else { throw .duplicateMember }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(headerBytes))
        } catch {
            throw .headerJSON
        }
        guard header.crit == nil else { throw .criticalHeader }
        let claims = try decodeClaims(payloadBytes)
        let signingInput = Array(bytes[..<(segments[1].endIndex)])
        return EmergencyToken(header: header, claims: claims, signingInput: signingInput, signature: signature)
    }

    private static func decodeClaims(_ bytes: [UInt8]) throws(ParseError) -> Claims {
        let claims: Claims
        do {
            claims = try JSONDecoder().decode(Claims.self, from: Data(bytes))
        } catch {
            throw .claimTypes
        }
        guard !claims.sub.isEmpty else { throw .claimTypes }
        let times = EmergencyAccess.acceptedTimes
        guard times.contains(claims.iat), times.contains(claims.nbf), times.contains(claims.exp) else { throw .claimValues }
        guard EmergencyAccess.isRevocable(jti: claims.jti) else { throw .claimValues }
        return claims
    }

    public static func isBase64URL(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }
}

/// Base64url without padding (RFC 4648 §5, as JWS uses it) through Foundation's base64, canonical
/// only: a segment that does not encode back to itself (non-zero unused bits) is refused, so that
/// one token has exactly one spelling.
public enum Base64URL {
    public static func decode<Bytes: Collection<UInt8>>(_ text: Bytes) -> [UInt8]? {
        guard text.allSatisfy(EmergencyToken.isBase64URL) else { return nil }
        var standard = String(decoding: text, as: UTF8.self)
            .replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        standard += String(repeating: "=", count: (4 - standard.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: standard), encode(data).utf8.elementsEqual(text) else { return nil }
        return Array(data)
    }

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
