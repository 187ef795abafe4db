import Foundation
import Synchronization
import TestSupport

/// The staging directory's path for the exit handler, which can capture nothing.
private let stagedPath = Mutex<String?>(nil)

/// Starts kube-api-auth the way a pod runs it. When the tests run as root, every invocation of the
/// binary goes through `setpriv` as uid/gid 1000 with no supplementary groups, empty inheritable
/// and bounding capability sets and `no_new_privs` (with the uid change the kernel clears the
/// permitted and effective sets too), and the files the invocation names are handed to that user
/// first, as a pod's volumes would be. As any other user the binary runs as that user, which is
/// unprivileged already.
///
/// A test that needs root on purpose must not come through here, and says why by name.
enum PodLaunch {
    static let setpriv = "/usr/bin/setpriv"

    /// What to execute for `executable arguments` run as a pod runs it; `environment` values that
    /// name test-made files are handed over like arguments.
    static func command(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:]
    ) throws -> (executable: String, arguments: [String]) {
        guard PodUser.testsRunAsRoot else { return (executable, arguments) }
        guard FileManager.default.isExecutableFile(atPath: setpriv) else {
            throw ProcessError(
                description: "\(setpriv) (util-linux) is missing: the tests run as root and start the service as uid \(PodUser.uid) through it")
        }
        for path in testMadePaths(in: arguments + environment.values) { try handOver(path) }
        return (setpriv, dropPrivileges + ["--", executable] + arguments)
    }

    private static let dropPrivileges = [
        "--reuid=\(PodUser.uid)", "--regid=\(PodUser.gid)", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
        "--no-new-privs",
    ]

    /// Test-made files and directories (under the temporary directory, in a `kube-api-auth-…`
    /// directory of a test) named by an argument, alone or after `=`. Repository files are never
    /// handed over: they are readable already, and a test must not change the checkout's owners.
    static func testMadePaths(in arguments: [String]) -> [String] {
        let root = (NSTemporaryDirectory() as NSString).standardizingPath + "/kube-api-auth-"
        return arguments.compactMap { argument in
            let value = argument.hasPrefix("-") ? argument.split(separator: "=", maxSplits: 1).dropFirst().first.map(String.init) : argument
            guard let value, value.hasPrefix("/") else { return nil }
            let path = (value as NSString).standardizingPath
            return path.hasPrefix(root) ? path : nil
        }
    }

    /// An existing path is handed over whole; for one the service is to create (a snapshot file, a
    /// key to write), the directory it goes in.
    static func handOver(_ path: String) throws {
        if FileManager.default.fileExists(atPath: path) {
            try PodUser.handOver(path)
        }
        let parent = (path as NSString).deletingLastPathComponent
        if parent.hasPrefix((NSTemporaryDirectory() as NSString).standardizingPath + "/kube-api-auth-") {
            // The directory only: its other files are not this invocation's.
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue {
                try PodUser.handOver(parent, recursive: false)
            }
        }
    }

    /// `path` when the pod's user can read it (and, with `executable`, execute it), else a copy of
    /// it that it can: a checkout under a directory only root may enter (such as /root) still runs
    /// the suite. Nothing is copied when the tests are not root. The copies go with the process.
    static func reachable(_ path: String, executable: Bool) -> String {
        guard PodUser.testsRunAsRoot else { return path }
        let test = executable ? "-x" : "-r"
        let probe = try? runProcess(setpriv, dropPrivileges + ["--", "/usr/bin/test", test, path])
        if probe?.status == 0 { return path }
        let directory = Staging.directory
        let copy = (directory as NSString).appendingPathComponent(UUID().uuidString + "-" + (path as NSString).lastPathComponent)
        do {
            try FileManager.default.copyItem(atPath: path, toPath: copy)
            try PodUser.handOver(copy)
            return copy
        } catch {
            // Then the tests fail with the reason where they start the binary.
            return path
        }
    }

    /// One directory for such copies, world-searchable and removed when the test process exits.
    private enum Staging {
        static let directory: String = {
            let path = NSTemporaryDirectory() + "kube-api-auth-staged-" + UUID().uuidString
            try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            stagedPath.withLock { $0 = path }
            atexit {
                if let path = stagedPath.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
            }
            return path
        }()
    }

    /// Checks that process `pid` runs as the pod's user (when the tests are root; else as this
    /// user) with no capability in any set, and that it is `binary` itself (setpriv has exec'd it).
    /// - Parameters:
    ///   - binary: the executable the process must be (`nil` for a container's, whose path is the image's).
    ///   - asPod: check the pod's uid and the root-only limits even when the tests do not run as root.
    static func verifyUnprivileged(pid: Int32, binary: String?, asPod: Bool = false) throws {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func field(_ name: String) -> [String] {
            let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
            return line.dropFirst(name.count + 1).split(whereSeparator: { $0 == "\t" || $0 == " " }).map(String.init)
        }
        let pod = PodUser.testsRunAsRoot || asPod
        let uid = pod ? PodUser.uid : getuid()
        let gid = pod ? PodUser.gid : getgid()
        var problems: [String] = []
        if field("Uid") != Array(repeating: "\(uid)", count: 4) { problems.append("Uid \(field("Uid")), expected \(uid)") }
        if field("Gid") != Array(repeating: "\(gid)", count: 4) { problems.append("Gid \(field("Gid")), expected \(gid)") }
        for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] where field(set) != ["0000000000000000"] {
            problems.append("\(set) \(field(set)), expected none")
        }
        if pod {
            if field("CapBnd") != ["0000000000000000"] { problems.append("CapBnd \(field("CapBnd")), expected none") }
            // A container runtime lists the primary group among the supplementary ones (as a pod's
            // runAsGroup is); nothing else may be there.
            if !field("Groups").allSatisfy({ asPod && $0 == "\(gid)" }) { problems.append("supplementary groups \(field("Groups"))") }
            if field("NoNewPrivs") != ["1"] { problems.append("NoNewPrivs \(field("NoNewPrivs"))") }
        }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? "?"
        if let binary, (executable as NSString).resolvingSymlinksInPath != (binary as NSString).resolvingSymlinksInPath {
            problems.append("process \(pid) is \(executable), not \(binary)")
        }
        guard problems.isEmpty else {
            throw ProcessError(description: "kube-api-auth is not running as a pod runs it: " + problems.joined(separator: "; "))
        }
    }
}

/// Runs the built image instead of the binary (`KUBE_API_AUTH_IMAGE`, made by scripts/image-test),
/// as a pod runs it: uid/gid 1000, read-only root, no capabilities, no new privileges, the host's
/// loopback (host network). The directories of the test-made files the arguments name are mounted
/// at the same paths, handed to uid 1000 first as PodLaunch does.
enum ContainerLaunch {
    /// The image under test, when the tests are to run it.
    static let image: String? = ProcessInfo.processInfo.environment["KUBE_API_AUTH_IMAGE"].flatMap { $0.isEmpty ? nil : $0 }
    static let podman = "/usr/bin/podman"

    static func command(
        image: String, name: String, _ arguments: [String], environment: [String: String] = [:]
    ) throws -> (executable: String, arguments: [String]) {
        var mounts: Set<String> = []
        for path in PodLaunch.testMadePaths(in: arguments + environment.values) {
            if PodUser.testsRunAsRoot { try PodLaunch.handOver(path) }
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            mounts.insert(exists && isDirectory.boolValue ? path : (path as NSString).deletingLastPathComponent)
        }
        var run = [
            "run", "--rm", "--name", name, "--pull", "never", "--network", "host", "--read-only", "--user", "\(PodUser.uid):\(PodUser.gid)",
            "--cap-drop", "all", "--security-opt", "no-new-privileges",
        ]
        for mount in mounts.sorted() { run += ["--volume", "\(mount):\(mount)"] }
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) { run += ["--env", "\(key)=\(value)"] }
        return (podman, run + [image] + arguments)
    }

    /// The container's main process, checked as PodLaunch checks the binary's.
    static func verifyUnprivileged(container name: String) throws {
        let inspected = try runProcess(podman, ["inspect", "--format", "{{.State.Pid}} {{.HostConfig.ReadonlyRootfs}}", name])
        let fields = inspected.stdout.split(whereSeparator: \.isWhitespace)
        guard fields.count == 2, let pid = Int32(fields[0]), pid > 0 else {
            throw ProcessError(description: "podman inspect \(name): \(inspected.stdout)\(inspected.stderr)")
        }
        guard fields[1] == "true" else { throw ProcessError(description: "container \(name) runs with a writable root") }
        try PodLaunch.verifyUnprivileged(pid: pid, binary: nil, asPod: true)
    }
}
