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

    private let detailsProvider = Mutex<(@Sendable () -> [String])?>(nil)

    /// Source-specific lines for `/readyz` (per-kind sync and watch state), computed when asked.
    public var details: [String] { detailsProvider.withLock { $0 }?() ?? [] }

    public func setDetailsProvider(_ provider: @escaping @Sendable () -> [String]) {
        detailsProvider.withLock { $0 = provider }
    }

    private let state: Mutex<Status>

    public init(source: String) {
        self.state = Mutex(Status(snapshot: nil, source: source))
    }

    public var snapshot: RecordSnapshot? { state.withLock { $0.snapshot } }

    public var status: Status { state.withLock { $0 } }

    public func publish(_ snapshot: RecordSnapshot, problemCount: Int, at time: Timestamp) {
        state.withLock {
            $0.snapshot = snapshot
            $0.generation += 1
            $0.loadedAt = time
            $0.problemCount = problemCount
        }
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
