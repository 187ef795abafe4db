import NIOCore
import Synchronization
import KubeAPIAuthCore

/// The open connections of a server, bounded by `--max-connections`.
///
/// At the cap, a new connection takes the place of the oldest one that has not completed a
/// request head yet, instead of being refused: slow clients that never finish their headers
/// (slowloris) cannot lock kube-apiserver out for the header timeout, while connections that
/// are serving or idle between requests are kept. Only when every connection has completed a
/// head is the new one refused. Also used to close what is left when the drain times out.
///
/// The lock is taken when a connection opens and when it closes, never per request; a
/// connection marks its first head once, with an atomic store.
final class ConnectionSlots: Sendable {
    final class Slot: Sendable {
        let channel: any Channel
        let sequence: UInt64
        private let headSeen = Atomic<Bool>(false)

        init(channel: any Channel, sequence: UInt64) {
            self.channel = channel
            self.sequence = sequence
        }

        /// The connection has completed a request head (called once, by its timeout handler).
        func markHeadSeen() { headSeen.store(true, ordering: .relaxed) }
        var hasSeenHead: Bool { headSeen.load(ordering: .relaxed) }
    }

    enum Admission {
        case admitted(Slot, evicted: (any Channel)?)
        case refused
    }

    let capacity: Int
    private let state = Mutex<(next: UInt64, slots: [ObjectIdentifier: Slot])>((0, [:]))

    init(capacity: Int) {
        self.capacity = capacity
    }

    func admit(_ channel: any Channel) -> Admission {
        state.withLock { state in
            let slot = Slot(channel: channel, sequence: state.next)
            state.next += 1
            var evicted: (any Channel)?
            if state.slots.count >= capacity {
                let oldest = state.slots.values.filter { !$0.hasSeenHead }.min { $0.sequence < $1.sequence }
                guard let oldest else { return .refused }
                state.slots.removeValue(forKey: ObjectIdentifier(oldest.channel))
                evicted = oldest.channel
            }
            state.slots[ObjectIdentifier(channel)] = slot
            return .admitted(slot, evicted: evicted)
        }
    }

    func remove(_ channel: any Channel) {
        _ = state.withLock { $0.slots.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    var open: [any Channel] { state.withLock { $0.slots.values.map(\.channel) } }
}
