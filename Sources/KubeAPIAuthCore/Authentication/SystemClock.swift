import Foundation
import RancherAuth

/// The node's real-time clock, the "now" the Go service compares `expiresAt` against.
public struct SystemClock: WallClock {
    public init() {}

    public func now() -> Timestamp {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Timestamp(seconds: Int64(now.tv_sec), nanoseconds: Int32(now.tv_nsec))
    }
}
