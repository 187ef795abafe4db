import Logging
import RancherAuth
import ServiceLifecycle
import Synchronization

/// Serves records from a directory and reloads them when its files change.
///
/// Files are compared by name, size, modification time and inode every `pollInterval`, which
/// also catches the symlink swaps of Kubernetes ConfigMap/Secret volume mounts.
public final class RecordsDirectorySource: Service {
    public let directory: RecordsDirectory
    let store: RecordStore
    let clock: any WallClock
    let pollInterval: Duration
    let logger: Logger
    let metrics: ServiceMetrics?
    /// The fingerprint taken just before the last load, so a change made during it is not missed.
    private let loadedFingerprint = Mutex<[String]>([])
    /// The files the last load ignored, for the census.
    private let lastProblems = Mutex<[RecordProblem]>([])

    public init(
        directory: RecordsDirectory, store: RecordStore, clock: any WallClock, pollInterval: Duration, metrics: ServiceMetrics? = nil,
        logger: Logger
    ) {
        self.directory = directory
        self.store = store
        self.clock = clock
        self.pollInterval = pollInterval
        self.metrics = metrics
        self.logger = logger
    }

    /// Loads the directory and publishes the records. The first call happens before the server
    /// starts listening, so no review is ever answered from an unloaded directory.
    @discardableResult
    public func reload() throws(RecordsDirectory.DirectoryError) -> RecordsDirectory.Load {
        let fingerprint = directory.fingerprint()
        let load: RecordsDirectory.Load
        do {
            load = try directory.load()
        } catch {
            loadedFingerprint.withLock { $0 = fingerprint }
            throw error
        }
        // A file that could not be read is read again at the next poll (the fingerprint would not
        // change for, say, a link whose target appears later, or a read that failed with EMFILE).
        loadedFingerprint.withLock { $0 = load.unreadableFiles.isEmpty ? fingerprint : [Self.retryMarker] }
        let previousProblems = lastProblems.withLock { $0 }
        // Logged when they change, so that a file read again at every poll is not logged at every poll.
        if load.problems != previousProblems || load.unreadableFiles.isEmpty {
            for problem in load.problems {
                logger.error("records file ignored", metadata: ["problem": "\(problem)"])
            }
        }
        lastProblems.withLock { $0 = load.problems }
        store.publish(
            load.snapshot(revision: "records-\(store.status.generation + 1)"), problemCount: load.problems.count, at: clock.now())
        // The same gauge as the API source's, per kind (it read 0 for every kind in this mode).
        if let metrics {
            let counts: [RecordKind: Int] = [
                .clusterAuthTokens: load.tokens.count, .clusterUserAttributes: load.users.count, .secrets: load.hashSecrets.count,
                .configMaps: load.refreshConfigMap == nil ? 0 : 1, .emergencySecret: load.emergency == nil ? 0 : 1,
            ]
            for (kind, count) in counts { metrics.setRecords(kind, count: count) }
        }
        logger.info(
            "records loaded",
            metadata: [
                "directory": "\(directory.path)", "files": "\(load.files.count)", "tokens": "\(load.tokens.count)",
                "users": "\(load.users.count)", "secrets": "\(load.hashSecrets.count)",
                "problems": "\(load.problems.count)", "generation": "\(store.status.generation)",
            ])
        // What the load allocated while decoding is freed by now but kept by malloc's arenas; give
        // it back, so that a large directory costs what its records hold, not what reading them took.
        Malloc.returnFreedMemory()
        return load
    }

    /// The files the last load ignored, as census findings.
    package func unreadableFindings() -> [RecordFinding] {
        lastProblems.withLock { $0 }.map { problem in
            RecordFinding(
                kind: .file, name: problem.file, reason: .unreadable, detail: problem.line.map { "line \($0): \(problem.message)" } ?? problem.message
            )
        }
    }

    public func run() async throws {
        // Stop polling as soon as graceful shutdown begins: the sleep is cancelled with the task,
        // and that cancellation is the normal way out, not an error.
        do {
            try await cancelWhenGracefulShutdown { try await self.poll() }
        } catch is CancellationError {
            return
        }
    }

    /// Stands for "read again": never equal to a directory's fingerprint.
    static let retryMarker = "<a file could not be read>"

    private func poll() async throws {
        while !Task.isCancelled {
            try await Task.sleep(for: self.pollInterval)
            reloadIfChanged()
        }
    }

    /// One poll: reloads when a file changed (or could not be read last time).
    package func reloadIfChanged() {
        let current = directory.fingerprint()
        guard current != loadedFingerprint.withLock({ $0 }) else { return }
        do {
            try reload()
        } catch {
            // The directory vanished or became unreadable: keep serving the last good load.
            logger.error("records directory unreadable; keeping the last loaded records", metadata: ["error": "\(error)"])
        }
    }
}
