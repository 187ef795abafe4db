import Foundation
import Yams

/// Creates the objects of YAML/JSON manifests directly in the server state (CRDs first, so
/// that their resources exist when the objects using them are created).
public enum ManifestLoader {
    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func load(directory: String, into state: APIServerState) throws -> Int {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }.sorted()
        var objects: [JSONValue] = []
        for file in files {
            let path = (directory as NSString).appendingPathComponent(file)
            if file.hasSuffix(".json"), let data = FileManager.default.contents(atPath: path), let value = try? JSONValue.parse(data) {
                // JSON needs no YAML parser (large benchmark inputs load in seconds).
                if case .array(let items)? = value["items"] { objects += items } else { objects.append(value) }
                continue
            }
            let text = try String(contentsOfFile: path, encoding: .utf8)
            objects += try parse(text, file: file)
        }
        let ordered =
            objects.filter { $0["kind"]?.stringValue == "CustomResourceDefinition" }
            + objects.filter { $0["kind"]?.stringValue != "CustomResourceDefinition" }
        for object in ordered { try create(object, in: state) }
        return ordered.count
    }

    /// Every object in a multi-document YAML (or JSON) text; `List` items are flattened.
    public static func parse(_ text: String, file: String = "manifest") throws -> [JSONValue] {
        var objects: [JSONValue] = []
        // The sequence parses lazily and keeps a syntax error in `error` rather than throwing it.
        var documents = try Yams.load_all(yaml: text)
        while let document = documents.next() {
            let value = try json(from: document, file: file)
            if case .array(let items)? = value["items"], value["kind"]?.stringValue?.hasSuffix("List") == true {
                objects += items
            } else if case .object = value {
                objects.append(value)
            }
        }
        if let error = documents.error { throw LoadError(description: "\(file): invalid YAML (\(error))") }
        return objects
    }

    public static func create(_ object: JSONValue, in state: APIServerState) throws {
        guard let apiVersion = object["apiVersion"]?.stringValue, let kind = object["kind"]?.stringValue else {
            throw LoadError(description: "an object has no apiVersion or kind")
        }
        let parts = apiVersion.split(separator: "/")
        let group = parts.count == 2 ? String(parts[0]) : ""
        let version = String(parts.last ?? "")
        guard let resource = state.resourceTypes.first(where: { $0.group == group && $0.version == version && $0.kind == kind }) else {
            throw LoadError(description: "no resource serves \(apiVersion) \(kind) (create its CRD first)")
        }
        do {
            _ = try state.create(resource, namespace: object.metadata("namespace") ?? "default", object: object)
        } catch {
            throw LoadError(description: error.message)
        }
    }

    static func json(from value: Any, file: String) throws -> JSONValue {
        switch value {
        case let string as String: return .string(string)
        case let bool as Bool: return .bool(bool)
        case let int as Int: return .number(Double(int))
        case let double as Double: return .number(double)
        case let array as [Any]: return .array(try array.map { try json(from: $0, file: file) })
        case let dictionary as [String: Any]: return .object(try dictionary.mapValues { try json(from: $0, file: file) })
        case let dictionary as [AnyHashable: Any]:
            return .object(Dictionary(uniqueKeysWithValues: try dictionary.map { ("\($0.key)", try json(from: $0.value, file: file)) }))
        case is NSNull: return .null
        case let date as Date:
            let formatter = ISO8601DateFormatter()
            return .string(formatter.string(from: date))
        default:
            throw LoadError(description: "\(file): unsupported YAML value \(type(of: value))")
        }
    }
}
