// Where the bytes of the records go: live heap bytes (glibc's mallinfo2) per record of each kind,
// and what the snapshot's maps and rendered answers add, for a records directory as
// bench/generate-records.py writes it. A program that prints figures, not a test.
//   swift run -c release records-memory-bench RECORDS_DIR
import Foundation
import KubeAPIAuthCore
import RancherAuth

/// Bytes allocated and not freed, after freed memory is handed back.
func liveBytes() -> Int {
    Malloc.returnFreedMemory()
    guard let bytes = Malloc.liveBytes() else { fatalError("glibc's mallinfo2 is not available here") }
    return bytes
}

guard CommandLine.arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: records-memory-bench RECORDS_DIR\n".utf8))
    exit(2)
}
let start = liveBytes()
var load = try RecordsDirectory(path: CommandLine.arguments[1], namespace: "cattle-system").load()
let loaded = liveBytes()
let counts = (tokens: load.tokens.count, secrets: load.hashSecrets.count, users: load.users.count)
print("records: \(counts.tokens) tokens, \(counts.secrets) hash Secrets, \(counts.users) users")
print(String(format: "loaded (records only):          %8.1f MiB", Double(loaded - start) / 1_048_576))

var snapshot: RecordSnapshot? = load.snapshot()
let withSnapshot = liveBytes()
print(String(format: "the snapshot adds (maps, answers): %6.1f MiB", Double(withSnapshot - loaded) / 1_048_576))

/// Frees one kind's array while the snapshot keeps only the others' objects alive: the bytes freed
/// are that kind's records (their objects, strings and buffers).
func perRecord(_ label: String, count: Int, drop: () -> Void) {
    let before = liveBytes()
    drop()
    let freed = before - liveBytes()
    print(
        "\(label.padding(toLength: 24, withPad: " ", startingAt: 0)) \(String(format: "%6.0f", Double(freed) / Double(max(count, 1)))) bytes per record"
    )
}
snapshot = nil
let snapshotFreed = withSnapshot - liveBytes()
print(String(format: "snapshot maps and answers:       %8.0f bytes per token", Double(snapshotFreed) / Double(max(counts.tokens, 1))))
perRecord("ClusterAuthToken", count: counts.tokens) { load.tokens = [] }
perRecord("hash Secret", count: counts.secrets) { load.hashSecrets = [] }
perRecord("ClusterUserAttribute", count: counts.users) { load.users = [] }
