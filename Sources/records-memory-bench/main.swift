// Where the bytes of the records go: live heap bytes (glibc's mallinfo2) per record of each kind,
// and what the snapshot (compact tables, users, rendered answers) keeps, for a records directory as
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
var load: RecordsDirectory.Load
do {
    load = try RecordsDirectory(path: CommandLine.arguments[1], namespace: "cattle-system").load()
} catch {
    FileHandle.standardError.write(Data("records-memory-bench: \(error)\n".utf8))
    exit(1)
}
let loaded = liveBytes()
let counts = (tokens: load.tokens.count, secrets: load.hashSecrets.count, users: load.users.count)
print("records: \(counts.tokens) tokens, \(counts.secrets) hash Secrets, \(counts.users) users")
print(String(format: "loaded (tables and user objects):   %6.1f MiB", Double(loaded - start) / 1_048_576))

var snapshot: RecordSnapshot? = load.snapshot()
load = RecordsDirectory.Load()
let kept = liveBytes() - start
print(
    String(
        format: "the snapshot alone:                 %6.1f MiB, %4.0f bytes per token (users and answers included)",
        Double(kept) / 1_048_576, Double(kept) / Double(max(counts.tokens, 1))))
if let snapshot {
    let tokenTable = Double(snapshot.tokens.storageBytes) / Double(max(counts.tokens, 1))
    let secretTable = Double(snapshot.hashSecrets.storageBytes) / Double(max(counts.secrets, 1))
    print(String(format: "  token table %4.0f, Secret table %4.0f bytes per record (rows, names and hashes, index)", tokenTable, secretTable))

    /// What the same records cost as objects (as a review reads them, and as they were held
    /// before the tables): every record of a kind built from its row at once.
    func asObjects<Record>(_ label: String, _ build: () -> [Record]) {
        let before = liveBytes()
        let objects = build()
        let bytes = liveBytes() - before
        print(
            "\(label.padding(toLength: 24, withPad: " ", startingAt: 0)) \(String(format: "%6.0f", Double(bytes) / Double(max(objects.count, 1)))) bytes per record as an object"
        )
        withExtendedLifetime(objects) {}
    }
    // The census walks every record of each published snapshot (at most once a second).
    let censusStart = ContinuousClock.now
    let census = RecordCensus.take(snapshot, now: Timestamp(seconds: 1_800_000_000))
    print("a census of the snapshot: \(ContinuousClock.now - censusStart) (\(census.usableTokens) usable tokens)")
    asObjects("ClusterAuthToken") { snapshot.tokens.values }
    asObjects("hash Secret") { snapshot.hashSecrets.values }
}
snapshot = nil
print(String(format: "after the snapshot is gone:         %6.1f MiB", Double(liveBytes() - start) / 1_048_576))
