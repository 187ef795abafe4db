import Foundation
import KubeClient
import Testing

@Suite("LenientObject: one object of a list, decoded on its own")
struct LenientObjectTests {
    /// Decodes only `spec.size`; says its name through `KubernetesObject` (it counts how often).
    struct Sized: Decodable, Sendable, KubernetesObject {
        struct Metadata: Decodable { var name: String; var resourceVersion: String? }
        struct Spec: Decodable { var size: Int }
        var metadata: Metadata
        var spec: Spec
        var objectName: String { metadata.name }
        var objectResourceVersion: String? { metadata.resourceVersion }
    }

    /// The same shape without `KubernetesObject`: the name comes from the header.
    struct Plain: Decodable, Sendable {
        struct Spec: Decodable { var size: Int }
        var spec: Spec
    }

    private func decode<T>(_ type: T.Type, _ json: String) throws -> LenientObject<T> {
        try JSONDecoder().decode(LenientObject<T>.self, from: Data(json.utf8))
    }

    @Test("The name and resourceVersion come from the object, from the header when it cannot say, and from the header when it fails")
    func names() throws {
        let good = #"{"metadata":{"name":"a","resourceVersion":"7"},"spec":{"size":3}}"#
        let sized = try decode(Sized.self, good)
        #expect(sized.name == "a" && sized.resourceVersion == "7")
        #expect((try? sized.result.get())?.spec.size == 3)

        let plain = try decode(Plain.self, good)
        #expect(plain.name == "a" && plain.resourceVersion == "7")

        let broken = try decode(Sized.self, #"{"metadata":{"name":"b","resourceVersion":"8"},"spec":{"size":"three"}}"#)
        #expect(broken.name == "b" && broken.resourceVersion == "8")
        guard case .failure(let error) = broken.result else {
            Issue.record("a string size decoded")
            return
        }
        #expect("\(error)".contains("spec.size"))
        #expect(!"\(error)".contains("three"))

        let nameless = try decode(Sized.self, #"{"spec":{"size":1}}"#)
        #expect(nameless.name == "")
        if case .success = nameless.result { Issue.record("an object without metadata decoded") }
    }
}
