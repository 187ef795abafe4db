import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The user kube-api-auth runs as in a pod: the image's `USER 1000:1000` and the manifests'
/// `runAsUser`/`runAsGroup: 1000`, with every capability dropped.
///
/// When the tests run as root (CI does), every kube-api-auth process they start runs as this user
/// with no capabilities, so that behaviour which only works as root (such as a socket option that
/// needs `CAP_NET_ADMIN`) fails a test instead of every pod.
public enum PodUser {
    public static let uid: UInt32 = 1000
    public static let gid: UInt32 = 1000

    /// Whether this test process is root, and so must drop to `PodUser` for the product.
    public static var testsRunAsRoot: Bool { geteuid() == 0 }

    public struct HandOverError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Gives `path` (and, for a directory, everything in it) to the pod's user, as a pod's volume
    /// is (a Secret or ConfigMap volume readable through `fsGroup`, an `emptyDir` writable). Symbolic
    /// links are changed themselves, never followed. With `recursive` false, a directory alone (its
    /// files stay as they are). Does nothing unless the tests run as root.
    public static func handOver(_ path: String, recursive: Bool = true) throws(HandOverError) {
        guard testsRunAsRoot else { return }
        try own(path)
        guard recursive else { return }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return }
        guard let entries = FileManager.default.enumerator(atPath: path) else { return }
        while let entry = entries.nextObject() as? String {
            try own((path as NSString).appendingPathComponent(entry))
        }
    }

    private static func own(_ path: String) throws(HandOverError) {
        guard lchown(path, uid, gid) == 0 else {
            throw HandOverError(description: "cannot give \(path) to uid \(uid): \(String(cString: strerror(errno)))")
        }
    }
}
