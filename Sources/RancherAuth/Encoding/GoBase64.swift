/// Base64 with the standard alphabet and no padding, decoded the way Go's
/// `base64.RawStdEncoding.DecodeString` does (Rancher writes hashes with it).
///
/// `Data(base64Encoded:)` cannot stand in: it requires padding and rejects newlines, and with
/// `.ignoreUnknownCharacters` it silently skips garbage. Go's rules, which decide whether a stored
/// hash verifies at all, are:
/// - only `A–Z a–z 0–9 + /` are data; `\r` and `\n` anywhere are skipped;
/// - `=` (or any other byte) is an error, since this encoding has no padding;
/// - a final group of one character is an error; unused trailing bits are ignored (non-strict mode).
public enum GoBase64 {
    public struct DecodingError: Error, Equatable, Sendable {
        /// Offset of the offending byte in the input, like Go's `CorruptInputError`.
        public let offset: Int
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    /// Decodes `input` (any collection of bytes, e.g. a `Substring.UTF8View`).
    public static func decode<Bytes: Collection>(_ input: Bytes) throws(DecodingError) -> [UInt8]
    where Bytes.Element == UInt8 {
        var output: [UInt8] = []
        output.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var pending = 0
        var offset = 0
        for byte in input {
            defer { offset += 1 }
            if byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") { continue }
            let value = decodeTable[Int(byte)]
            guard value != 0xFF else { throw DecodingError(offset: offset) }
            accumulator = accumulator << 6 | UInt32(value)
            pending += 1
            if pending == 4 {
                output.append(UInt8(truncatingIfNeeded: accumulator >> 16))
                output.append(UInt8(truncatingIfNeeded: accumulator >> 8))
                output.append(UInt8(truncatingIfNeeded: accumulator))
                accumulator = 0
                pending = 0
            }
        }
        switch pending {
        case 0:
            break
        case 1:
            throw DecodingError(offset: offset)
        case 2:
            output.append(UInt8(truncatingIfNeeded: accumulator >> 4))
        default:  // 3
            output.append(UInt8(truncatingIfNeeded: accumulator >> 10))
            output.append(UInt8(truncatingIfNeeded: accumulator >> 2))
        }
        return output
    }

    /// Encodes without padding (`base64.RawStdEncoding.EncodeToString`).
    public static func encode<Bytes: Sequence>(_ input: Bytes) -> String where Bytes.Element == UInt8 {
        var output: [UInt8] = []
        var group: UInt32 = 0
        var count = 0
        for byte in input {
            group = group << 8 | UInt32(byte)
            count += 1
            if count == 3 {
                for shift in stride(from: 18, through: 0, by: -6) {
                    output.append(alphabet[Int(group >> UInt32(shift) & 0x3F)])
                }
                group = 0
                count = 0
            }
        }
        if count == 1 {
            output.append(alphabet[Int(group >> 2 & 0x3F)])
            output.append(alphabet[Int(group << 4 & 0x3F)])
        } else if count == 2 {
            output.append(alphabet[Int(group >> 10 & 0x3F)])
            output.append(alphabet[Int(group >> 4 & 0x3F)])
            output.append(alphabet[Int(group << 2 & 0x3F)])
        }
        return String(decoding: output, as: UTF8.self)
    }
}

extension GoBase64 {
    /// Standard padded base64 as Kubernetes stores `[]byte` fields (Go `base64.StdEncoding`):
    /// `\r`/`\n` skipped, length a multiple of four, `=` only as the final padding.
    public static func decodePadded<Bytes: Collection>(_ input: Bytes) -> [UInt8]? where Bytes.Element == UInt8 {
        if let decoded = input.withContiguousStorageIfAvailable(decodePadded) { return decoded.bytes }
        return Array(input).withUnsafeBufferPointer(decodePadded).bytes
    }

    /// A decoding's result (a struct, not a nested optional, through `withContiguousStorageIfAvailable`).
    private struct Padded {
        var bytes: [UInt8]?
    }

    /// A value of one line (every value Kubernetes writes) is decoded in place; only one with line
    /// breaks is copied without them first. (A copy per value was a twentieth of the CPU of
    /// syncing 100,000 hash Secrets.)
    private static func decodePadded(_ buffer: UnsafeBufferPointer<UInt8>) -> Padded {
        if buffer.contains(where: { $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }) {
            return buffer.filter { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }.withUnsafeBufferPointer(decodePadded)
        }
        guard buffer.count % 4 == 0 else { return Padded(bytes: nil) }
        var end = buffer.count
        while buffer.count - end < 2, end > 0, buffer[end - 1] == UInt8(ascii: "=") { end -= 1 }
        return Padded(bytes: try? decode(buffer[..<end]))
    }
}
