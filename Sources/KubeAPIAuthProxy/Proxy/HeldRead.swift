import NIOCore

/// A `read` held back for backpressure: the one rule every relay of the proxy follows (the client
/// side of an exchange, the upstream side, and each half of an upgrade's splice). With autoRead, a
/// channel asks for its next read through `read`; a handler whose peer cannot take more holds that
/// request, and passes it on once the peer is writable again, so memory per exchange stays at one
/// read's worth whatever the other side sends.
struct HeldRead {
    private(set) var isHeld = false

    /// Passes a `read` on, or holds it while `paused`.
    mutating func read(_ context: ChannelHandlerContext, paused: Bool) {
        if paused {
            isHeld = true
        } else {
            context.read()
        }
    }

    /// Passes a held `read` on (the peer can take more again); nothing when none is held.
    mutating func release(_ context: ChannelHandlerContext) {
        guard isHeld else { return }
        isHeld = false
        context.read()
    }
}
