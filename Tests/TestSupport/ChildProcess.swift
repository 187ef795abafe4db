import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, with the part of Foundation's `Process` API that the
/// tests use.
///
/// Why not `Process`: on Linux, `Process.run()` lists `/proc/self/fd` to close inherited
/// descriptors and copies each entry's whole 256-byte `d_name`, reading past the end of glibc's
/// readdir buffer. With enough descriptors open — a test runner with servers, clients and children
/// has them — it segfaults now and then (swift-corelibs-foundation PR #5472, fixed after the 6.3
/// toolchain; it ended a CI run of this suite). Here the child closes everything above standard
/// error with `closefrom` (`posix_spawn_file_actions_addclosefrom_np`), and a thread of its own
/// waits for the exit (`waitpid` on this child only).
public final class ChildProcess: @unchecked Sendable {
    /// What a child's standard stream is connected to.
    public enum Stream {
        /// A pipe: the child gets the end it needs, and this process closes that end once the child
        /// has started (so reading the other end sees end-of-file when the child exits).
        case pipe(Pipe)
        case handle(FileHandle)
        case null
    }

    public var executableURL: URL?
    public var arguments: [String] = []
    public var environment: [String: String]?
    public var standardInput: Stream = .null
    public var standardOutput: Stream = .null
    public var standardError: Stream = .null
    /// Called once, on the waiting thread, when the child has exited.
    public var terminationHandler: (@Sendable (ChildProcess) -> Void)?

    private let condition = NSCondition()
    private var pid: pid_t = 0
    private var status: Int32?

    public init() {}

    public var processIdentifier: Int32 { condition.withLock { pid } }

    public var isRunning: Bool { condition.withLock { pid != 0 && status == nil } }

    /// The exit status, or 128 + the signal number for a child ended by a signal (as a shell says).
    public var terminationStatus: Int32 { condition.withLock { status ?? -1 } }

    public struct SpawnError: Error, CustomStringConvertible {
        public let description: String
    }

    public func run() throws {
        guard let executableURL else { throw SpawnError(description: "no executable") }
        let path = executableURL.path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group (as `Process` does), and no signal blocked by the spawning thread.
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK))

        var nullDevice: FileHandle?
        func source(_ stream: Stream, forReading: Bool) throws -> Int32 {
            switch stream {
            case .pipe(let pipe): return forReading ? pipe.fileHandleForReading.fileDescriptor : pipe.fileHandleForWriting.fileDescriptor
            case .handle(let handle): return handle.fileDescriptor
            case .null:
                if nullDevice == nil {
                    let descriptor = open("/dev/null", O_RDWR | O_CLOEXEC)
                    guard descriptor >= 0 else { throw SpawnError(description: "cannot open /dev/null: errno \(errno)") }
                    nullDevice = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
                }
                return nullDevice!.fileDescriptor
            }
        }
        posix_spawn_file_actions_adddup2(&actions, try source(standardInput, forReading: true), 0)
        posix_spawn_file_actions_adddup2(&actions, try source(standardOutput, forReading: false), 1)
        posix_spawn_file_actions_adddup2(&actions, try source(standardError, forReading: false), 2)
        guard let closeFrom = Self.addCloseFrom else {
            throw SpawnError(description: "posix_spawn_file_actions_addclosefrom_np is missing (glibc 2.34 or later needed)")
        }
        guard closeFrom(&actions, 3) == 0 else { throw SpawnError(description: "cannot add closefrom to the spawn actions") }

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in env { free(pointer) }
        }
        var spawned: pid_t = 0
        let result = posix_spawn(&spawned, path, &actions, &attributes, argv, env)
        guard result == 0 else { throw SpawnError(description: "cannot start \(path): \(String(cString: strerror(result)))") }
        let child = spawned
        condition.withLock { pid = child }
        // The child's ends of pipes are the child's now.
        if case .pipe(let pipe) = standardInput { try? pipe.fileHandleForReading.close() }
        if case .pipe(let pipe) = standardOutput { try? pipe.fileHandleForWriting.close() }
        if case .pipe(let pipe) = standardError, !Self.same(standardError, standardOutput) { try? pipe.fileHandleForWriting.close() }
        Thread.detachNewThread { [self] in
            var raw: Int32 = 0
            while waitpid(child, &raw, 0) < 0 && errno == EINTR {}
            // WIFEXITED / WEXITSTATUS / WTERMSIG, which the Glibc module does not import (macros).
            let signal = raw & 0x7F
            let exit = signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
            condition.withLock {
                status = exit
                condition.broadcast()
            }
            terminationHandler?(self)
        }
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np`, which the Glibc module does not import.
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    private static func same(_ lhs: Stream, _ rhs: Stream) -> Bool {
        if case .pipe(let left) = lhs, case .pipe(let right) = rhs { return left === right }
        return false
    }

    /// Sends SIGTERM.
    public func terminate() { signal(SIGTERM) }

    public func signal(_ number: Int32) {
        condition.withLock {
            if pid != 0 && status == nil { kill(pid, number) }
        }
    }

    public func waitUntilExit() {
        condition.withLock {
            while pid != 0 && status == nil { condition.wait() }
        }
    }

    /// Waits until the child has exited or `deadline` has passed; whether it has exited.
    public func waitUntilExit(before deadline: Date) -> Bool {
        condition.withLock {
            while pid != 0 && status == nil {
                if !condition.wait(until: deadline) { break }
            }
            return status != nil
        }
    }
}
