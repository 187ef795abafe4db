import Foundation
import TestSupport
import Synchronization
import Testing

/// Every token secret and hash string the end-to-end tests create, so that each service's
/// output can be checked for all of them.
enum Credentials {
    private static let registered = Mutex<Set<String>>([
        "lxzqzf799fx8s9jkztkschr7tg9rwkzrtmqb7w7mt99jnd7hc552pc", "disabled-demo-secret", "expired-demo-secret",
    ])

    static func register(secret: String) {
        guard secret.count >= 8 else { return }
        registered.withLock { _ = $0.insert(secret) }
    }

    /// A hash, and the forms it appears in: its salt+digest part, and base64 as in Secret data.
    static func register(hash: String) {
        guard hash.count >= 16 else { return }
        registered.withLock { set in
            set.insert(hash)
            set.insert(String(hash.split(separator: ":").last ?? ""))
            set.insert(Data(hash.utf8).base64EncodedString())
        }
    }

    /// The hashes of the example records, registered once.
    private static let examples: Void = {
        let directory = Binary.repositoryRoot.appendingPathComponent("examples/records").path
        for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            let text = (try? String(contentsOfFile: (directory as NSString).appendingPathComponent(file), encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.contains("hash: \"") {
                let value = line.split(separator: "\"").dropFirst().first.map(String.init) ?? ""
                if value.hasPrefix("$") {
                    register(hash: value)
                } else if let decoded = Data(base64Encoded: value).map({ String(decoding: $0, as: UTF8.self) }) {
                    register(hash: decoded)
                }
            }
        }
    }()

    static var all: Set<String> {
        _ = examples
        return registered.withLock { $0 }
    }
}

/// The built `kube-api-auth` binary, run as a separate process.
enum Binary {
    /// The binary the tests run: `built`, or, when the tests run as root and the pod's user cannot
    /// reach it (a checkout under a directory only root may enter), a copy that it can.
    static let path = PodLaunch.reachable(built, executable: true)

    /// `$KUBE_API_AUTH_BINARY`, else the binary next to the test bundle (same build directory).
    static let built: String = {
        if let path = ProcessInfo.processInfo.environment["KUBE_API_AUTH_BINARY"] { return path }
        let testExecutable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: testExecutable).deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("kube-api-auth").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../.build/debug/kube-api-auth").standardized.path
    }()

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../..").standardized

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the binary to completion with `input` on standard input, as a pod runs it (PodLaunch).
    static func run(_ arguments: [String], input: String = "") throws -> Result {
        let launch = try PodLaunch.command(path, arguments)
        return try runProcess(launch.executable, launch.arguments, input: input)
    }
}

/// Runs any program to completion (bounded by `timeout` seconds), capturing its output.
func runProcess(_ executable: String, _ arguments: [String], input: String = "", timeout: TimeInterval = 60) throws -> Binary.Result {
    let process = ChildProcess()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "KUBECONFIG" && !$0.key.hasPrefix("KUBERNETES_") }
    let stdin = Pipe()
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardInput = .pipe(stdin)
    process.standardOutput = .pipe(stdout)
    process.standardError = .pipe(stderr)
    let exited = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in exited.signal() }
    try process.run()
    PipeIO.writeAll(Data(input.utf8), to: stdin.fileHandleForWriting)
    try stdin.fileHandleForWriting.close()
    // Both pipes are read on threads of their own, so a full pipe never blocks the child and a
    // child that hangs is still bounded by `timeout` (the reads would wait for it forever).
    nonisolated(unsafe) var outputData = Data()
    nonisolated(unsafe) var errorData = Data()
    let outputRead = DispatchSemaphore(value: 0)
    let errorRead = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        outputData = PipeIO.readAll(stdout.fileHandleForReading)
        outputRead.signal()
    }
    Thread.detachNewThread {
        errorData = PipeIO.readAll(stderr.fileHandleForReading)
        errorRead.signal()
    }
    if exited.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        throw ProcessError(description: "\(executable) \(arguments) did not finish within \(timeout) s")
    }
    outputRead.wait()
    errorRead.wait()
    return Binary.Result(
        status: process.terminationStatus, stdout: String(decoding: outputData, as: UTF8.self),
        stderr: String(decoding: errorData, as: UTF8.self))
}

struct ProcessError: Error, CustomStringConvertible {
    let description: String
}

/// `kube-api-auth serve` (or `proxy`) running in the background on ephemeral ports as a pod runs it
/// (uid 1000, no capabilities, checked: PodLaunch), with its log captured.
final class ServiceProcess: @unchecked Sendable {
    let process = ChildProcess()
    private let condition = NSCondition()
    private var log = ""
    private var exited = false
    /// The log has been read to its end (the child and anything it started closed their output).
    private var drained = false
    private var exitedAt: Date?
    /// `127.0.0.1:PORT` of the first listener.
    private(set) var address = ""

    /// Starts `kube-api-auth <globalArguments> serve <serveArguments> --listen 127.0.0.1:0` and waits
    /// until it logs its listening address.
    /// `command` nil runs the binary without a subcommand (it serves); `environment` is added to
    /// the test's own (less anything that could point it at a developer's cluster).
    /// With `image`, the image runs instead of the binary (ContainerLaunch).
    init(
        global globalArguments: [String] = ["--debug"], command: String? = "serve", serve serveArguments: [String],
        listen: [String] = ["127.0.0.1:0"], environment: [String: String] = [:], image: String? = nil
    ) throws {
        let arguments = globalArguments + (command.map { [$0] } ?? []) + serveArguments + listen.flatMap { ["--listen", $0] }
        let container = image.map { _ in "kube-api-auth-test-\(UUID().uuidString.prefix(8).lowercased())" }
        let launch =
            if let image, let container {
                try ContainerLaunch.command(image: image, name: container, arguments, environment: environment)
            } else {
                try PodLaunch.command(Binary.path, arguments, environment: environment)
            }
        process.executableURL = URL(fileURLWithPath: launch.executable)
        process.arguments = launch.arguments
        // The service must not pick up a developer's cluster: only what the test passes.
        process.environment = ProcessInfo.processInfo.environment
            .filter { $0.key != "KUBECONFIG" && !$0.key.hasPrefix("KUBERNETES_") && !Self.goServiceVariables.contains($0.key) }
            .merging(environment) { _, given in given }
        let stderr = Pipe()
        process.standardError = .pipe(stderr)
        process.standardOutput = .pipe(stderr)
        process.standardInput = .null
        // A thread of its own with blocking reads (see PipeIO); it ends when the process exits.
        let reading = stderr.fileHandleForReading
        Thread.detachNewThread { [weak self] in
            PipeIO.readUntilEnd(reading) { data in
                guard let self else { return }
                self.condition.lock()
                self.log += String(decoding: data, as: UTF8.self)
                self.condition.broadcast()
                self.condition.unlock()
            }
            guard let self else { return }
            self.condition.lock()
            self.drained = true
            self.condition.broadcast()
            self.condition.unlock()
        }
        process.terminationHandler = { [weak self] _ in
            guard let self else { return }
            self.condition.lock()
            self.exited = true
            self.exitedAt = Date()
            self.condition.broadcast()
            self.condition.unlock()
        }
        try process.run()
        ChildReaper.watch(process.processIdentifier)
        // Text (`msg=listening address=…`) or JSON (`"msg":"listening",…"address":"…"`) logs.
        let line = try waitForLog { log in
            log.split(separator: "\n").first {
                ($0.contains("msg=listening") || $0.contains(#""msg":"listening""#)) && !$0.contains("metrics")
            }.map(String.init)
        }
        if let range = line.range(of: "address=") {
            address = String(line[range.upperBound...].prefix { $0 != " " })
        } else if let range = line.range(of: #""address":""#) {
            address = String(line[range.upperBound...].prefix { $0 != "\"" })
        } else {
            throw ProcessError(description: "no address in \(line)")
        }
        if let container {
            try ContainerLaunch.verifyUnprivileged(container: container)
        } else {
            try PodLaunch.verifyUnprivileged(pid: process.processIdentifier, binary: Binary.path)
        }
    }

    /// Exited, and its output read to the end: the log is complete (call with `condition` held).
    private var hasEnded: Bool { exited && drained }

    /// How long the end of the output is waited for after the exit.
    private static let drainWait: TimeInterval = 5

    /// The variables the Go service's newer releases are configured with, never inherited.
    static let goServiceVariables: Set<String> = ["CATTLE_DEBUG", "RANCHER_DEBUG", "CATTLE_NAMESPACE", "CATTLE_LISTEN"]

    var output: String {
        condition.lock()
        defer { condition.unlock() }
        return log
    }

    var baseURL: String { "http://\(address)" }

    /// Waits (event-driven, bounded) until `match` finds something in the log.
    @discardableResult
    func waitForLog<T>(timeout: TimeInterval = 20, _ match: (String) -> T?) throws -> T {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let found = match(log) { return found }
            if hasEnded { throw ProcessError(description: "kube-api-auth exited; log:\n\(log)") }
            // Once it has exited, the rest of its output is waited for only briefly (a process it
            // started could hold the pipe open).
            let until = exitedAt.map { min(deadline, $0.addingTimeInterval(Self.drainWait)) } ?? deadline
            if !condition.wait(until: until) {
                if exited && until < deadline { drained = true; continue }
                throw ProcessError(description: "timed out waiting for the service log; log:\n\(log)")
            }
        }
    }

    /// Waits for `text` in the log; with `since` (a `logMark` taken earlier), only in what was
    /// logged after that mark, so that an earlier line of the same kind does not count.
    func waitForLog(containing text: String, since mark: Int = 0, timeout: TimeInterval = 20) throws {
        try waitForLog(timeout: timeout) { $0.utf8.dropFirst(mark).contains(text.utf8) ? true : nil }
    }

    /// The current end of the log, for `waitForLog(containing:since:)`.
    var logMark: Int { output.utf8.count }

    /// Sends SIGTERM and waits for the exit status. Then checks the whole output against every
    /// secret and hash the tests have created (log hygiene, for every scenario).
    func stop(timeout: TimeInterval = 30) throws -> Int32 {
        if process.isRunning { process.terminate() }
        try waitForLog(timeout: timeout) { [self] _ in hasEnded ? true : nil }
        let log = output
        for secret in Credentials.all where log.contains(secret) {
            Issue.record("the service output contains a secret or hash the tests created")
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

/// `curl` as a subprocess: returns standard output.
func curl(_ arguments: [String]) throws -> String {
    try runProcess("/usr/bin/curl", ["-s", "-S", "-m", "20"] + arguments).stdout
}

/// Repeats `attempt` until `accept` likes its result or `within` has passed, bounded by time and
/// by count, backing off between attempts (each is a real request); returns the last result. For state the service
/// reaches asynchronously, such as a change synced from the API or a re-established watch.
func repeatUntil(
    within: Duration, _ attempt: () async throws -> String, _ accept: (String) -> Bool
) async throws -> String {
    let deadline = ContinuousClock.now + within
    var result = ""
    var pause = Duration.milliseconds(20)
    for _ in 0..<10_000 {
        result = try await attempt()
        let now = ContinuousClock.now
        if accept(result) || now >= deadline { break }
        // Back off between attempts (20 ms, doubling up to 500 ms), never past the deadline.
        try await Task.sleep(for: min(pause, deadline - now))
        pause = min(pause * 2, .milliseconds(500))
    }
    return result
}

/// `curl` repeated until its output is accepted (see `repeatUntil`).
/// Bounds here are for a run that went wrong: at the start of the end-to-end suite, with dozens of
/// services starting at once on 2 cores, steps that take a second took over 20 (a 10 s bound failed
/// there twice). A passing check returns as soon as it is true.
func curlUntil(_ arguments: [String], within: Duration = .seconds(30), _ accept: (String) -> Bool) async throws -> String {
    try await repeatUntil(within: within, { try curl(arguments) }, accept)
}

/// The value of one sample (exact name and labels) in a Prometheus text exposition.
func metric(_ exposition: String, _ sample: String) -> Double? {
    for line in exposition.split(separator: "\n") where line.hasPrefix(sample + " ") {
        return Double(line.dropFirst(sample.count + 1))
    }
    return nil
}
