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
