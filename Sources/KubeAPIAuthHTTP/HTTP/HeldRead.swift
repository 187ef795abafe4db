/// A `read` held back for backpressure: the one rule every connection of the service follows (a
/// server connection of either door, the proxy's upstream side, each half of an upgrade's splice). With autoRead, a
/// channel asks for its next read through `read`; a handler whose peer cannot take more holds that
/// request, and passes it on once the peer is writable again, so memory per exchange stays at one
/// read's worth whatever the other side sends.
///
/// The caller passes the read on itself, after this value's methods have returned: passing it on
/// can deliver data at once, re-entering the handler and this value (a mutation still in progress
/// would then be an exclusivity violation, which traps; seen with 1,000 watches).
package struct HeldRead {
    package private(set) var isHeld = false

    package init() {}

    /// Whether a `read` may be passed on now; when `paused`, it is held instead.
    package mutating func mayPass(paused: Bool) -> Bool {
        if paused { isHeld = true }
        return !paused
    }

    /// Takes the held `read`, if any: `true` when the caller is to pass it on now.
    package mutating func takeHeld() -> Bool {
        guard isHeld else { return false }
        isHeld = false
        return true
    }
}
