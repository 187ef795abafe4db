import KubeClient
import RancherAuth

// The record kinds tell the reflector their name and resourceVersion once decoded, so that a list
// of 100,000 decodes each object's metadata once (`LenientObject`).

extension ClusterAuthToken: KubernetesObject {
    public var objectName: String { metadata.name }
    public var objectResourceVersion: String? { metadata.resourceVersion }
}

extension ClusterUserAttribute: KubernetesObject {
    public var objectName: String { metadata.name }
    public var objectResourceVersion: String? { metadata.resourceVersion }
}

extension HashSecret: KubernetesObject {
    public var objectName: String { metadata.name }
    public var objectResourceVersion: String? { metadata.resourceVersion }
}

extension OpaqueSecret: KubernetesObject {
    public var objectName: String { metadata.name }
    public var objectResourceVersion: String? { metadata.resourceVersion }
}

extension RefreshConfigMap: KubernetesObject {
    public var objectName: String { metadata.name }
    public var objectResourceVersion: String? { metadata.resourceVersion }
}
