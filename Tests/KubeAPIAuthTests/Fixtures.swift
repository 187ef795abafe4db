import Foundation
import KubeAPIAuth
import KubeAPIAuthCore
import KubeAPIAuthHTTP
import KubeAPIAuthWebhook
import KubeAPIAuthProxy
import Logging
import RancherAuth
import Synchronization

struct FixedClock: WallClock {
    var instant: Timestamp
    func now() -> Timestamp { instant }
}

/// A clock the test moves forward.
final class MutableClock: WallClock {
    private let instant: Mutex<Timestamp>

    init(_ start: Timestamp) { instant = Mutex(start) }

    func now() -> Timestamp { instant.withLock { $0 } }

    func advance(seconds: Int64) { instant.withLock { $0 = $0.adding(nanoseconds: seconds * 1_000_000_000) } }
}

let v1Hash = "$3:1:AAECAwQFBgc:JQzhvjFUqw7sLtERcKcxyLbQKyb2c4Tb2YchCRAogAvF+cJqR8FJEikdmT1yMUTko9By+2Vlo3pMJCFNGRiV1w"
let validToken = "kubeconfig-u-abc12x7k2q:test-secret-key"

/// Spec §3.4's fixture F0 as a manifest file.
let fixtureManifest = """
    apiVersion: cluster.cattle.io/v3
    kind: ClusterAuthToken
    metadata: {name: kubeconfig-u-abc12x7k2q, namespace: cattle-system}
    userName: u-abc12
    enabled: true
    expiresAt: "2099-01-01T00:00:00Z"
    hash: ""
    ---
    apiVersion: v1
    kind: Secret
    metadata: {name: kubeconfig-u-abc12x7k2q, namespace: cattle-system}
    type: Opaque
    data:
      hash: JDM6MTpBQUVDQXdRRkJnYzpKUXpodmpGVXF3N3NMdEVSY0tjeHlMYlFLeWIyYzRUYjJZY2hDUkFvZ0F2RitjSnFSOEZKRWlrZG1UMXlNVVRrbzlCeSsyVmxvM3BNSkNGTkdSaVYxdw==
    ---
    apiVersion: cluster.cattle.io/v3
    kind: ClusterUserAttribute
    metadata: {name: u-abc12, namespace: cattle-system}
    groups: ["github_org://456", "github_team://123"]
    lastRefresh: "2026-01-01T00:00:00Z"
    needsRefresh: false
    enabled: true

    """

/// Collects log lines for assertions.
final class LogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    var text: String { lock.withLock { lines.joined() } }

    func logger(level: Logger.Level = .debug) -> Logger {
        Logger(label: "test") { label in
            LineLogHandler(label: label, level: level) { line in self.lock.withLock { self.lines.append(line) } }
        }
    }
}
