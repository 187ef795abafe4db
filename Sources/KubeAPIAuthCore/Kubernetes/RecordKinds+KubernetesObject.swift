import KubeClient
import RancherAuth

/// A record kind that carries Kubernetes `metadata`: it tells the reflector its name and
/// resourceVersion once decoded, so that a list of 100,000 decodes each object's metadata once
/// (`LenientObject`).
public protocol RecordWithMetadata: KubernetesObject {
    var metadata: ObjectMeta { get }
}

extension RecordWithMetadata {
    public var objectName: String { metadata.name }
    public var objectResourceVersion: String? { metadata.resourceVersion }
}

extension ClusterAuthToken: RecordWithMetadata {}
extension ClusterUserAttribute: RecordWithMetadata {}
extension HashSecret: RecordWithMetadata {}
extension OpaqueSecret: RecordWithMetadata {}
extension RefreshConfigMap: RecordWithMetadata {}

/// The record kinds listed by the hundred thousand are read without `JSONDecoder` when the page
/// allows (``RecordListPage``; `JSONDecoder` reads the page otherwise).
extension ClusterAuthToken: ListPageDecodable {
    public static func decodeListPage(_ bytes: UnsafeRawBufferPointer) -> ListPage<ClusterAuthToken>? {
        RecordListPage.tokens(bytes).map(ListPage.init(records:))
    }
}

extension HashSecret: ListPageDecodable {
    public static func decodeListPage(_ bytes: UnsafeRawBufferPointer) -> ListPage<HashSecret>? {
        RecordListPage.hashSecrets(bytes).map(ListPage.init(records:))
    }
}

extension ClusterUserAttribute: ListPageDecodable {
    public static func decodeListPage(_ bytes: UnsafeRawBufferPointer) -> ListPage<ClusterUserAttribute>? {
        RecordListPage.users(bytes).map(ListPage.init(records:))
    }
}

extension ListPage where T: RecordWithMetadata {
    init(records page: RecordListPage.Page<T>) {
        self.init(
            items: page.items.map { LenientObject(name: $0.objectName, resourceVersion: $0.objectResourceVersion, result: .success($0)) },
            resourceVersion: page.resourceVersion, continueToken: page.continueToken)
    }
}
