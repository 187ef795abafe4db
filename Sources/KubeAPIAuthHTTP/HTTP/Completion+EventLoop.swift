import NIOCore
import KubeAPIAuthCore

extension Completion {
    /// Runs `body` on `eventLoop` with the value: at once when it completes there (or already has,
    /// and this is called there), else as a task on the loop. How a door on an event loop takes a
    /// late value from the core (which completes it on a worker thread).
    package func whenComplete(on eventLoop: any EventLoop, _ body: @escaping @Sendable (Value) -> Void) {
        whenComplete { value in
            if eventLoop.inEventLoop {
                body(value)
            } else {
                eventLoop.execute { body(value) }
            }
        }
    }
}
