import Foundation

/// A JSON document, as the test API server stores objects: schemaless, like a CRD with
/// `x-kubernetes-preserve-unknown-fields`. Object keys keep no order (Kubernetes does not promise one).
public indirect enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value == value.rounded(), abs(value) < 1e15 { try container.encode(Int64(value)) } else { try container.encode(value) }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    public static func parse(_ data: Data) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: data)
    }

    /// Compact JSON with sorted keys, written directly (Codable is too slow for lists of 100,000 objects).
    public func serialized() -> Data {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        write(into: &bytes)
        return Data(bytes)
    }

    private func write(into bytes: inout [UInt8]) {
        switch self {
        case .null: bytes += Array("null".utf8)
        case .bool(let value): bytes += Array((value ? "true" : "false").utf8)
        case .number(let value):
            if value == value.rounded(), abs(value) < 1e15 {
                bytes += Array(String(Int64(value)).utf8)
            } else {
                bytes += Array("\(value)".utf8)
            }
        case .string(let value): Self.writeString(value, into: &bytes)
        case .array(let values):
            bytes.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                value.write(into: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            bytes.append(UInt8(ascii: "{"))
            for (index, key) in object.keys.sorted().enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                Self.writeString(key, into: &bytes)
                bytes.append(UInt8(ascii: ":"))
                object[key]!.write(into: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    private static let hex = Array("0123456789abcdef".utf8)

    private static func writeString(_ value: String, into bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += [0x5C, 0x22]
            case UInt8(ascii: "\\"): bytes += [0x5C, 0x5C]
            case 0x0A: bytes += [0x5C, UInt8(ascii: "n")]
            case 0x0D: bytes += [0x5C, UInt8(ascii: "r")]
            case 0x09: bytes += [0x5C, UInt8(ascii: "t")]
            case 0x00..<0x20: bytes += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// The element at `index` of an array (nil for anything else or out of range).
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let array) = self, array.indices.contains(index) else { return nil }
        return array[index]
    }

    public subscript(key: String) -> JSONValue? {
        get {
            guard case .object(let object) = self else { return nil }
            return object[key]
        }
        set {
            guard case .object(var object) = self else { return }
            object[key] = newValue
            self = .object(object)
        }
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// `metadata.<field>` as a string.
    public func metadata(_ field: String) -> String? { self["metadata"]?[field]?.stringValue }

    public mutating func setMetadata(_ field: String, _ value: JSONValue?) {
        var metadata = self["metadata"] ?? .object([:])
        metadata[field] = value
        self["metadata"] = metadata
    }
}

// MARK: - Patches

public struct PatchError: Error, CustomStringConvertible {
    public let description: String
}

extension JSONValue {
    /// RFC 7386 JSON merge patch.
    public func mergePatched(with patch: JSONValue) -> JSONValue {
        guard case .object(let patchObject) = patch else { return patch }
        var target = objectValue ?? [:]
        for (key, value) in patchObject {
            if value == .null {
                target.removeValue(forKey: key)
            } else {
                target[key] = (target[key] ?? .null).mergePatched(with: value)
            }
        }
        return .object(target)
    }

    /// RFC 6902 JSON patch (add, remove, replace, move, copy, test).
    public func jsonPatched(with operations: JSONValue) throws(PatchError) -> JSONValue {
        guard case .array(let list) = operations else { throw PatchError(description: "a JSON patch must be an array of operations") }
        var document = self
        for operation in list {
            guard let op = operation["op"]?.stringValue, let path = operation["path"]?.stringValue else {
                throw PatchError(description: "each JSON patch operation needs \"op\" and \"path\"")
            }
            let pointer = try Self.pointer(path)
            switch op {
            case "add":
                document = try document.inserting(operation["value"] ?? .null, at: pointer[...], replace: false)
            case "replace":
                _ = try document.value(at: pointer[...])
                document = try document.inserting(operation["value"] ?? .null, at: pointer[...], replace: true)
            case "remove":
                document = try document.removing(at: pointer[...])
            case "test":
                guard try document.value(at: pointer[...]) == (operation["value"] ?? .null) else {
                    throw PatchError(description: "test operation failed for \(path)")
                }
            case "move", "copy":
                guard let from = operation["from"]?.stringValue else { throw PatchError(description: "\(op) needs \"from\"") }
                let source = try Self.pointer(from)
                let value = try document.value(at: source[...])
                if op == "move" { document = try document.removing(at: source[...]) }
                document = try document.inserting(value, at: pointer[...], replace: false)
            default:
                throw PatchError(description: "unknown JSON patch operation \"\(op)\"")
            }
        }
        return document
    }

    static func pointer(_ path: String) throws(PatchError) -> [String] {
        if path.isEmpty { return [] }
        guard path.hasPrefix("/") else { throw PatchError(description: "JSON pointer \"\(path)\" must start with /") }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            String($0).replacing("~1", with: "/").replacing("~0", with: "~")
        }
    }

    func value(at pointer: ArraySlice<String>) throws(PatchError) -> JSONValue {
        guard let key = pointer.first else { return self }
        switch self {
        case .object(let object):
            guard let child = object[key] else { throw PatchError(description: "path segment \"\(key)\" does not exist") }
            return try child.value(at: pointer.dropFirst())
        case .array(let array):
            guard let index = Int(key), array.indices.contains(index) else { throw PatchError(description: "bad array index \"\(key)\"") }
            return try array[index].value(at: pointer.dropFirst())
        default:
            throw PatchError(description: "path segment \"\(key)\" does not exist")
        }
    }

    func inserting(_ value: JSONValue, at pointer: ArraySlice<String>, replace: Bool) throws(PatchError) -> JSONValue {
        guard let key = pointer.first else { return value }
        let rest = pointer.dropFirst()
        switch self {
        case .object(var object):
            if rest.isEmpty {
                object[key] = value
            } else {
                guard let child = object[key] else { throw PatchError(description: "path segment \"\(key)\" does not exist") }
                object[key] = try child.inserting(value, at: rest, replace: replace)
            }
            return .object(object)
        case .array(var array):
            if rest.isEmpty {
                if key == "-", !replace {
                    array.append(value)
                } else if let index = Int(key), index >= 0, index <= array.count, replace ? index < array.count : true {
                    if replace { array[index] = value } else { array.insert(value, at: index) }
                } else {
                    throw PatchError(description: "bad array index \"\(key)\"")
                }
            } else {
                guard let index = Int(key), array.indices.contains(index) else { throw PatchError(description: "bad array index \"\(key)\"") }
                array[index] = try array[index].inserting(value, at: rest, replace: replace)
            }
            return .array(array)
        default:
            throw PatchError(description: "path segment \"\(key)\" does not exist")
        }
    }

    func removing(at pointer: ArraySlice<String>) throws(PatchError) -> JSONValue {
        guard let key = pointer.first else { throw PatchError(description: "cannot remove the whole document") }
        let rest = pointer.dropFirst()
        switch self {
        case .object(var object):
            guard let child = object[key] else { throw PatchError(description: "path segment \"\(key)\" does not exist") }
            if rest.isEmpty { object.removeValue(forKey: key) } else { object[key] = try child.removing(at: rest) }
            return .object(object)
        case .array(var array):
            guard let index = Int(key), array.indices.contains(index) else { throw PatchError(description: "bad array index \"\(key)\"") }
            if rest.isEmpty { array.remove(at: index) } else { array[index] = try array[index].removing(at: rest) }
            return .array(array)
        default:
            throw PatchError(description: "path segment \"\(key)\" does not exist")
        }
    }
}
