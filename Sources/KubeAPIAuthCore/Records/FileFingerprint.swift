import Foundation

/// What identifies a file's current contents cheaply: size, modification time and inode. A
/// change in any of them means "read it again" (this also catches the symlink swaps of
/// Kubernetes Secret and ConfigMap volume mounts, which change the inode).
package enum FileFingerprint {
    package static func of(_ path: String) -> String {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return "\(path)|missing" }
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1
        let inode = (attributes[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0
        return "\(path)|\(size)|\(modified)|\(inode)"
    }
}
