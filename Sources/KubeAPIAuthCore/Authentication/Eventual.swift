import Synchronization

/// A value now, or one that completes later: the one "now or later" of the service. Nearly every
/// review is decided at once (`now`, no allocation beyond the value); an expensive hash check on
/// the workers, or a SubjectAccessReview, completes a ``Completion`` from another thread.
///
/// Transport-free on purpose: the core hands out `Eventual`s without knowing of event loops; a
/// door on an event loop hops the late value onto its loop (``Completion/whenComplete(_:)`` runs
/// its callback on the completing thread).
public enum Eventual<Value: Sendable>: Sendable {
    case now(Value)
    case later(Completion<Value>)

    /// The value transformed, now or when it completes.
    public func map<T: Sendable>(_ transform: @escaping @Sendable (Value) -> T) -> Eventual<T> {
        switch self {
        case .now(let value): return .now(transform(value))
        case .later(let completion): return .later(completion.map(transform))
        }
    }

    /// Chains a step that may itself be late.
    public func flatMap<T: Sendable>(_ transform: @escaping @Sendable (Value) -> Eventual<T>) -> Eventual<T> {
        switch self {
        case .now(let value): return transform(value)
        case .later(let completion):
            let next = Completion<T>()
            completion.whenComplete { value in
                switch transform(value) {
                case .now(let result): next.complete(result)
                case .later(let inner): inner.whenComplete { next.complete($0) }
                }
            }
            return .later(next)
        }
    }

    /// The value, waiting for it if it is late.
    public var value: Value {
        get async {
            switch self {
            case .now(let value): return value
            case .later(let completion): return await completion.value
            }
        }
    }
}

/// A value that one party completes once and others wait for, by callback or `await`. The first
/// completion wins; callbacks registered before it run on the completing thread, after it at once.
public final class Completion<Value: Sendable>: Sendable {
    private enum State {
        case waiting([@Sendable (Value) -> Void])
        case done(Value)
    }

    private let state = Mutex<State>(.waiting([]))

    public init() {}

    public func complete(_ value: Value) {
        let callbacks: [@Sendable (Value) -> Void] = state.withLock { state in
            guard case .waiting(let callbacks) = state else { return [] }
            state = .done(value)
            return callbacks
        }
        for callback in callbacks { callback(value) }
    }

    public func whenComplete(_ callback: @escaping @Sendable (Value) -> Void) {
        let ready: Value? = state.withLock { state in
            switch state {
            case .done(let value): return value
            case .waiting(var callbacks):
                callbacks.append(callback)
                state = .waiting(callbacks)
                return nil
            }
        }
        if let ready { callback(ready) }
    }

    package func map<T: Sendable>(_ transform: @escaping @Sendable (Value) -> T) -> Completion<T> {
        let next = Completion<T>()
        whenComplete { next.complete(transform($0)) }
        return next
    }

    public var value: Value {
        get async {
            await withCheckedContinuation { continuation in
                whenComplete { continuation.resume(returning: $0) }
            }
        }
    }
}
