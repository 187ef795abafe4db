import Logging
import RancherAuth
import Synchronization

/// Holds the current ``RecordSnapshot`` and what readiness needs to know about it.
///
/// Reviews take the snapshot reference under a lock held for a pointer copy only; sources build
/// a whole new snapshot off to the side and swap it in.
public final class RecordStore: Sendable {
    public struct Status: Sendable {
        /// `nil` until the first complete load: reviews answer 503 and `/readyz` fails until then.
        public var snapshot: RecordSnapshot?
        public var source: String
        public var generation: Int = 0
        public var loadedAt: Timestamp?
        /// Records dropped in the last load (malformed or conflicting files), for `/readyz` and logs.
        public var problemCount: Int = 0
    }

    /// What a source says about itself for `/readyz`, computed when asked so that ages are current.
    public struct SourceDetails: Sendable {
        /// Per-kind sync and watch state, one line each.
        public var lines: [String] = []
        /// Some records come from the snapshot file because the API could not be listed yet.
        public var servingFromSnapshotFile = false

        public init(lines: [String] = [], servingFromSnapshotFile: Bool = false) {
            self.lines = lines
            self.servingFromSnapshotFile = servingFromSnapshotFile
        }
    }

    private let detailsProvider = Mutex<(@Sendable () -> SourceDetails)?>(nil)

    public var sourceDetails: SourceDetails { detailsProvider.withLock { $0 }?() ?? SourceDetails() }

    public func setDetailsProvider(_ provider: @escaping @Sendable () -> SourceDetails) {
        detailsProvider.withLock { $0 = provider }
    }

    private let censusProvider = Mutex<(@Sendable () -> [String])?>(nil)

    /// What the record census says, for `/readyz?verbose` (empty until a census runs).
    public var censusLines: [String] { censusProvider.withLock { $0 }?() ?? [] }

    public func setCensusProvider(_ provider: @escaping @Sendable () -> [String]) {
        censusProvider.withLock { $0 = provider }
    }

    private let state: Mutex<Status>
    private let observers = Mutex<[@Sendable (RecordSnapshot) -> Void]>([])

    /// Calls `observer` with every snapshot published from now on, on the publishing thread
    /// (never an event loop), after the snapshot is current.
    public func onPublish(_ observer: @escaping @Sendable (RecordSnapshot) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    public init(source: String) {
        self.state = Mutex(Status(snapshot: nil, source: source))
    }

    public var snapshot: RecordSnapshot? { state.withLock { $0.snapshot } }

    public var status: Status { state.withLock { $0 } }

    /// How many snapshots have been published: read before a review and again later, it tells
    /// whether the review's records are still the current ones (snapshots are only ever replaced).
    public var generation: Int { state.withLock { $0.generation } }

    /// The current snapshot and its generation, read together.
    public var current: (snapshot: RecordSnapshot?, generation: Int) { state.withLock { ($0.snapshot, $0.generation) } }

    public func publish(_ snapshot: RecordSnapshot, problemCount: Int, at time: Timestamp) {
        state.withLock {
            $0.snapshot = snapshot
            $0.generation += 1
            $0.loadedAt = time
            $0.problemCount = problemCount
        }
        for observer in observers.withLock({ $0 }) { observer(snapshot) }
    }
}

/// Receives the writes successful reviews ask for (``SideEffects``).
public protocol ReviewEffectsSink: Sendable {
    func submit(_ effects: SideEffects, for decision: Decision)
}

/// The sink for sources that cannot be written to. A records directory is the operator's own
/// files: the service never edits them, so `lastUsedAt`, `needsRefresh` and hash migration are
/// not recorded there (the Kubernetes source writes them to the API).
public struct ReadOnlySourceEffects: ReviewEffectsSink {
    public init() {}
    public func submit(_ effects: SideEffects, for decision: Decision) {}
}
