import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Testing
import TestSupport

/// The example records, as the tests hand them to the service (a copy where the pod's user cannot
/// reach the checkout: PodLaunch.reachable).
let examplesDirectory = PodLaunch.reachable(Binary.repositoryRoot.appendingPathComponent("examples/records").path, executable: false)
let demoToken = "kubeconfig-u-demo15wfb6:lxzqzf799fx8s9jkztkschr7tg9rwkzrtmqb7w7mt99jnd7hc552pc"
let demoSecret = "lxzqzf799fx8s9jkztkschr7tg9rwkzrtmqb7w7mt99jnd7hc552pc"

func review(_ token: String, apiVersion: String? = nil) -> String {
    let version = apiVersion.map { #""apiVersion":"\#($0)","# } ?? ""
    return #"{\#(version)"kind":"TokenReview","spec":{"token":"\#(token)"}}"#
}

/// A client whose connections carry one request each. Every test starts its own services on
/// ephemeral ports; a pooled keep-alive connection could otherwise outlive one test's service and
/// be reused when a later service happens to get the same port (seen once as "connection reset by
/// peer" on a loaded machine). Keep-alive itself is tested with raw sockets and on EmbeddedChannel.
let endToEndClient: HTTPClient = {
    var configuration = HTTPClient.Configuration()
    configuration.maximumUsesPerConnection = 1
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
}()

func post(_ url: String, _ body: String, headers: [(String, String)] = []) async throws -> (HTTPResponseStatus, HTTPHeaders, String) {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    request.headers.add(name: "content-type", value: "application/json")
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    request.body = .bytes(ByteBuffer(string: body))
    let response = try await endToEndClient.execute(request, timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 1 << 20)
    return (response.status, response.headers, String(buffer: bytes))
}

@Suite("kube-api-auth serve, end to end")
struct ServeEndToEndTests {
    @Test("The README's curl examples produce the outputs the README shows")
    func readmeExamples() throws {
        let readme = try String(contentsOf: Binary.repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "<!-- readme-examples:begin -->"))
        let end = try #require(readme.range(of: "<!-- readme-examples:end -->"))
        let block = readme[start.upperBound..<end.lowerBound].split(separator: "\n").map(String.init).filter { !$0.hasPrefix("```") }
        var examples: [(command: String, expected: [String])] = []
        for line in block where !line.isEmpty {
            if line.hasPrefix("$ ") {
                examples.append((String(line.dropFirst(2)), []))
            } else {
                examples[examples.count - 1].expected.append(line)
            }
        }
        #expect(examples.count >= 5)
        let service = try ServiceProcess(serve: ["--records-dir", examplesDirectory])
        for example in examples {
            let command = example.command.replacing("http://127.0.0.1:6440", with: service.baseURL)
            let result = try runProcess("/bin/bash", ["-c", command])
            #expect(result.stdout.split(separator: "\n").map(String.init) == example.expected, "\(example.command)")
        }
        #expect(try service.stop() == 0)
    }

    @Test("AsyncHTTPClient: v1 and v1beta1 echoed, refusals, 400, 413, whoami")
    func asyncHTTPClient() async throws {
        let service = try ServiceProcess(serve: ["--records-dir", examplesDirectory, "--max-body-bytes", "2048"])
        let url = service.baseURL + "/v1/authenticate?timeout=30s"

        let (status, headers, body) = try await post(url, review(demoToken, apiVersion: "authentication.k8s.io/v1"))
        #expect(status == .ok)
        #expect(headers.first(name: "content-type") == "application/json")
        #expect(headers["retry-after"].isEmpty)
        #expect(
            body
                == #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,"user":{"username":"u-demo1","groups":["github_org://rancher","local://g-admins"]}}}"#
        )

        let beta = try await post(url, review("ext/" + demoToken, apiVersion: "authentication.k8s.io/v1beta1"))
        #expect(beta.2.hasPrefix(#"{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","status":{"authenticated":true"#))

        let refused = try await post(url, review("kubeconfig-u-demo15wfb6:\(demoSecret)x"))
        #expect(refused.0 == .ok)
        #expect(refused.2.contains(#""authenticated":false,"error":"token secret does not match""#))

        let unknown = try await post(url, review("nope:\(demoSecret)"))
        #expect(unknown.2.contains(#""error":"token not found""#))

        let jwt = try await post(url, review("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"))
        #expect(jwt.2.hasSuffix(#""status":{"authenticated":false}}"#))

        let malformed = try await post(url, #"{"kind":"TokenReview","spec":{"token":42}}"#)
        #expect(malformed.0 == .badRequest)
        #expect(malformed.2.contains(#""message":"spec.token must be a string""#))

        let tooLarge = try await post(url, String(repeating: " ", count: 4096) + review(demoToken))
        #expect(tooLarge.0 == .payloadTooLarge)

        let whoami = try await post(
            service.baseURL + "/apis/authentication.k8s.io/v1/selfsubjectreviews", "{}",
            headers: [("authorization", "Bearer \(demoToken)")])
        #expect(whoami.0 == .created)
        #expect(whoami.2.contains(#""username":"u-demo1""#))
        #expect(try service.stop() == 0)
    }

    @Test("curl: healthcheck and routing behave like the Go service (T18, T19)")
    func curlRouting() throws {
        let service = try ServiceProcess(serve: ["--records-dir", examplesDirectory])
        let base = service.baseURL
        let code = ["-o", "/dev/null", "-w", "%{http_code}"]
        #expect(try curl(code + ["\(base)/healthcheck"]) == "200")
        #expect(try curl(["-i", "\(base)/healthcheck"]).hasSuffix("content-length: 0\r\n\r\n"))
        #expect(try curl(code + ["-I", "\(base)/healthcheck"]) == "405")
        #expect(try curl(code + ["\(base)/nope"]) == "404")
        #expect(try curl(code + ["\(base)/healthcheck/"]) == "301")
        #expect(try curl(code + ["\(base)/v1/authenticate"]) == "405")
        #expect(try curl(code + ["\(base)/livez"]) == "200")
        #expect(try curl(["\(base)/readyz"]).hasPrefix("ok: serving records from records directory"))
        // Several requests on one keep-alive connection, as kube-apiserver sends them.
        let twice = try curl(["-d", review(demoToken), "\(base)/v1/authenticate", "--next", "-d", review(demoToken), "\(base)/v1/authenticate"])
        #expect(twice.components(separatedBy: #""authenticated":true"#).count == 3)
        #expect(try service.stop() == 0)
    }

    @Test("Records changes apply live; a botched edit fails closed and is reported by file and line")
    func liveReload() async throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        let service = try ServiceProcess(serve: ["--records-dir", directory, "--records-poll-interval", "0.1"])
        let url = service.baseURL + "/v1/authenticate"

        // Mint a token with the CLI while the service runs.
        let minted = try Binary.run(["token", "create", "--user", "u-live1", "--group", "g://live", "--records-dir", directory])
        #expect(minted.status == 0, "\(minted.stderr)")
        let bearer = try #require(minted.stdout.split(separator: "\n").last.map(String.init))
        Credentials.register(secret: String(bearer.drop { $0 != ":" }.dropFirst()))
        let tokenName = String(bearer.prefix { $0 != ":" })
        try service.waitForLog(containing: "generation=2")
        let allowed = try await post(url, review(bearer))
        #expect(allowed.2.contains(#""username":"u-live1","groups":["g://live"]"#))

        // An edit meant to disable the token, with a type error: the token must not stay valid.
        let tokenFile = (directory as NSString).appendingPathComponent("\(tokenName).yaml")
        let original = try String(contentsOfFile: tokenFile, encoding: .utf8)
        try original.replacing("enabled: true", with: "enabled: \"no\"").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        try service.waitForLog(containing: "generation=3")
        let botched = try await post(url, review(bearer))
        #expect(botched.2.contains(#""error":"token not found""#))
        #expect(service.output.contains("\(tokenName).yaml:7: ClusterAuthToken \(tokenName): field enabled expected a boolean"))

        // Fixed properly: disabled.
        try original.replacing("enabled: true", with: "enabled: false").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        try service.waitForLog(containing: "generation=4")
        #expect(try await post(url, review(bearer)).2.contains(#""error":"token is disabled""#))

        // Deleted.
        try FileManager.default.removeItem(atPath: tokenFile)
        try service.waitForLog(containing: "generation=5")
        #expect(try await post(url, review(bearer)).2.contains(#""error":"token not found""#))

        #expect(try service.stop() == 0)
        let secret = String(bearer.drop { $0 != ":" }.dropFirst())
        #expect(!service.output.contains(secret))
    }

    @Test("scrypt and SHA-256 tokens verify over HTTP (scrypt off the event loop)")
    func legacyHashes() async throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        var bearers: [String] = []
        for (user, algorithm) in [("u-scrypt", "scrypt"), ("u-sha256", "sha256")] {
            let minted = try Binary.run(["token", "create", "--user", user, "--algorithm", algorithm, "--records-dir", directory])
            #expect(minted.status == 0, "\(minted.stderr)")
            let bearer = try #require(minted.stdout.split(separator: "\n").last.map(String.init))
            Credentials.register(secret: String(bearer.drop { $0 != ":" }.dropFirst()))
            bearers.append(bearer)
        }
        let service = try ServiceProcess(serve: ["--records-dir", directory])
        let url = service.baseURL + "/v1/authenticate"
        try await withThrowingTaskGroup(of: String.self) { group in
            for bearer in bearers + bearers {
                group.addTask { try await post(url, review(bearer)).2 }
            }
            for try await body in group {
                #expect(body.contains(#""authenticated":true"#))
            }
        }
        #expect(try await post(url, review(bearers[0] + "x")).2.contains(#""error":"token secret does not match""#))
        // The audit line is written as the answer goes out; the test reads the log through a pipe.
        try service.waitForLog(containing: "hash=scrypt")

        // Pipelined on one connection, behind a scrypt check that runs on the worker pool (a
        // wrong secret is never in the verified cache): answered in request order.
        func request(_ body: String) -> String {
            "POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        }
        let port = try #require(UInt16(service.address.split(separator: ":").last ?? ""))
        let socket = try RawSocket(port: port)
        try socket.send(request(review(bearers[0] + "y")) + request(review(bearers[1])) + "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        let answers = socket.read(until: "ok\n").components(separatedBy: "HTTP/1.1 200 OK")
        #expect(answers.count == 4)
        #expect(answers.count == 4 && answers[1].contains(#""error":"token secret does not match""#))
        #expect(answers.count == 4 && answers[2].contains(#""username":"u-sha256""#))
        #expect(answers.count == 4 && answers[3].hasSuffix("ok\n"))
        #expect(try service.stop() == 0)
    }

    @Test("A scrypt flood beyond the queue is answered with a bare 503, never Retry-After")
    func scryptOverflow() async throws {
        let scratch = try TemporaryDirectory()
        let directory = scratch.path
        let minted = try Binary.run(["token", "create", "--user", "u-scrypt", "--algorithm", "scrypt", "--records-dir", directory])
        let bearer = try #require(minted.stdout.split(separator: "\n").last.map(String.init))
        Credentials.register(secret: String(bearer.drop { $0 != ":" }.dropFirst()))
        let service = try ServiceProcess(serve: ["--records-dir", directory, "--scrypt-workers", "1", "--scrypt-queue", "0"])
        let url = service.baseURL + "/v1/authenticate"
        var statuses: [HTTPResponseStatus] = []
        try await withThrowingTaskGroup(of: (HTTPResponseStatus, HTTPHeaders, String).self) { group in
            for _ in 0..<6 { group.addTask { try await post(url, review(bearer)) } }
            for try await (status, headers, body) in group {
                statuses.append(status)
                #expect(headers["retry-after"].isEmpty)
                if status == .ok { #expect(body.contains(#""authenticated":true"#)) }
            }
        }
        #expect(statuses.contains(.ok))
        #expect(statuses.contains(.serviceUnavailable))
        #expect(Set(statuses).isSubset(of: [.ok, .serviceUnavailable]))
        #expect(try service.stop() == 0)
    }

    @Test("Limits: long tokens refused unread, oversized headers rejected, connections over the cap closed")
    func limits() async throws {
        let service = try ServiceProcess(serve: ["--records-dir", examplesDirectory, "--max-token-bytes", "200", "--max-header-bytes", "2048"])
        let url = service.baseURL + "/v1/authenticate"
        let long = try await post(url, review("kubeconfig-u-demo15wfb6:" + String(repeating: "x", count: 300)))
        #expect(long.2.hasSuffix(#""status":{"authenticated":false}}"#))
        #expect(authenticated(try await post(url, review(demoToken)).2))
        let bigHeader = try curl([
            "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Big: " + String(repeating: "a", count: 4000), service.baseURL + "/livez",
        ])
        #expect(bigHeader.hasPrefix("4"))

        #expect(try service.stop() == 0)

        // A fresh service that only these sockets talk to, so the count is exact.
        let capped = try ServiceProcess(serve: ["--records-dir", examplesDirectory, "--max-connections", "2"])
        let port = try #require(UInt16(capped.address.split(separator: ":").last ?? ""))
        let first = try RawSocket(port: port)
        try first.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(first.read(until: "ok\n").hasPrefix("HTTP/1.1 200"))
        let second = try RawSocket(port: port)
        try second.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(second.read(until: "ok\n").hasPrefix("HTTP/1.1 200"))
        let third = try RawSocket(port: port, receiveTimeoutSeconds: 5)
        try? third.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(third.readToEnd() == "")
        #expect(try capped.stop() == 0)
    }

    @Test("At --max-connections a new connection replaces the oldest one that never completed a request head")
    func connectionCapEvictsSlowHeads() throws {
        let capped = try ServiceProcess(serve: ["--records-dir", examplesDirectory, "--max-connections", "2"])
        let port = try #require(UInt16(capped.address.split(separator: ":").last ?? ""))
        // A slow client: its request head never completes (it would hold the slot for the header timeout).
        let slow = try RawSocket(port: port, receiveTimeoutSeconds: 10)
        try slow.send("POST /v1/authenticate HTTP/1.1\r\nHost: x\r\n")
        // A client that has been served and stays connected (keep-alive).
        let served = try RawSocket(port: port)
        try served.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        // With the service's log when it fails (it failed once, unexplained, in a local run).
        #expect(served.read(until: "ok\n").hasPrefix("HTTP/1.1 200"), "service log:\n\(capped.output)")
        // kube-apiserver arrives at the cap: the slow connection makes room, the served one is kept.
        let body = review(demoToken)
        let newcomer = try RawSocket(port: port)
        try newcomer.send("POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(newcomer.read(until: "}}").contains(#""authenticated":true"#), "service log:\n\(capped.output)")
        #expect(slow.readToEnd() == "")
        try served.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(served.read(until: "ok\n").hasPrefix("HTTP/1.1 200"))
        // Every open connection has completed a head now: a further one is refused.
        let refused = try RawSocket(port: port, receiveTimeoutSeconds: 5)
        try? refused.send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(refused.readToEnd() == "")
        #expect(try capped.stop() == 0)
    }

    @Test("IPv6 loopback is served alongside IPv4 when the host has it")
    func ipv6() throws {
        let service = try ServiceProcess(serve: ["--records-dir", examplesDirectory], listen: ["127.0.0.1:0", "[::1]:0"])
        try service.waitForLog { log in
            log.components(separatedBy: "msg=listening").count == 3 || log.contains("listen address skipped") ? true : nil
        }
        let lines = service.output.split(separator: "\n").filter { $0.contains("msg=listening") }
        if let v6 = lines.first(where: { $0.contains("address=[::1]:") }) {
            let address = String(v6[v6.range(of: "address=")!.upperBound...].prefix { $0 != " " })
            #expect(try curl(["-g", "-d", review(demoToken), "http://\(address)/v1/authenticate"]).contains(#""authenticated":true"#))
        } else {
            #expect(service.output.contains("listen address skipped"))
        }
        #expect(try service.stop() == 0)
    }

    @Test("SIGTERM drains and exits 0")
    func gracefulShutdown() throws {
        let service = try ServiceProcess(serve: ["--records-dir", examplesDirectory])
        #expect(try curl(["-d", review(demoToken), "\(service.baseURL)/v1/authenticate"]).contains(#""authenticated":true"#))
        #expect(try service.stop() == 0)
        #expect(service.output.contains("msg=drained"))
        #expect(!service.output.contains("level=fatal"))
    }

    @Test("A request in flight when SIGTERM arrives is still answered; then the service exits 0")
    func drainInFlightRequest() throws {
        let service = try ServiceProcess(serve: ["--records-dir", examplesDirectory])
        let port = try #require(UInt16(service.address.split(separator: ":").last ?? ""))
        let body = review(demoToken)
        let socket = try RawSocket(port: port)
        try socket.send("POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
        // `100 Continue` proves the server has read the head: the signal then comes mid-request.
        #expect(socket.read(until: "\r\n\r\n") == "HTTP/1.1 100 Continue\r\n\r\n")
        try socket.send(String(body.prefix(10)))
        service.process.terminate()
        try service.waitForLog(containing: "shutting down: draining")
        try socket.send(String(body.dropFirst(10)))
        let response = socket.readToEnd()
        #expect(response.hasPrefix("HTTP/1.1 200 OK"))
        #expect(response.contains(#""authenticated":true"#))
        #expect(try service.stop() == 0)
    }

    @Test("The service log never contains a secret or a hash")
    func logHygiene() async throws {
        let service = try ServiceProcess(serve: ["--records-dir", examplesDirectory])
        let url = service.baseURL + "/v1/authenticate"
        for token in [demoToken, "kubeconfig-u-demo15wfb6:guess-one", "kubeconfig-u-demo1disab:disabled-demo-secret", "eyJhbGciOi.secretjwt.sig"] {
            _ = try await post(url, review(token))
        }
        _ = try await post(url, #"{"kind":"Nope","spec":{"token":"kubeconfig-u-demo15wfb6:in-a-bad-review"}}"#)
        #expect(try service.stop() == 0)
        let log = service.output
        #expect(log.contains("level=info msg=review"))
        for secret in [demoSecret, "guess-one", "disabled-demo-secret", "secretjwt", "in-a-bad-review", "JDM6", "$3:1:"] {
            #expect(!log.contains(secret), "log contains \(secret)")
        }
    }
}

@Suite("kube-api-auth CLI, end to end")
struct CLIEndToEndTests {
    @Test("hash | verify: exit 0 on match, 1 on mismatch, 2 on a malformed hash")
    func hashAndVerify() throws {
        for algorithm in ["sha3", "sha256", "scrypt"] {
            let hashed = try Binary.run(["hash", "--algorithm", algorithm], input: "s3cret\n")
            #expect(hashed.status == 0)
            let hash = hashed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(hash.hasPrefix(["sha3": "$3:1:", "sha256": "$2:", "scrypt": "$1:"][algorithm]!))
            #expect(try Binary.run(["verify", "--hash", hash], input: "s3cret").status == 0)
            #expect(try Binary.run(["verify", "--hash", hash], input: "s3cre7").status == 1)
        }
        let malformed = try Binary.run(["verify", "--hash", "$9:x:y"], input: "s3cret")
        #expect(malformed.status == 2)
        #expect(malformed.stderr.contains("malformed hash: invalid version 9"))
        #expect(try Binary.run(["hash"], input: "").status != 0)
    }

    @Test("A secret on standard input loses one trailing \\n or \\r\\n and nothing else")
    func secretLineEndings() throws {
        let hash = try Binary.run(["hash"], input: "hello world").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try Binary.run(["verify", "--hash", hash], input: "hello world\r\n").status == 0)
        #expect(try Binary.run(["verify", "--hash", hash], input: "hello world\n").status == 0)
        // "\r\n" is one Character in Swift: trimming two Characters would also drop the "!".
        #expect(try Binary.run(["verify", "--hash", hash], input: "hello world!\r\n").status == 1)
        #expect(try Binary.run(["verify", "--hash", hash], input: "hello world!\n").status == 1)
        #expect(try Binary.run(["verify", "--hash", hash], input: "hello world\n\n").status == 1)
    }

    @Test("token create --records-dir writes files readable by their owner only, and no temporary file stays")
    func tokenCreateFileMode() throws {
        let scratch = try TemporaryDirectory()
        let result = try Binary.run(["token", "create", "--user", "u-mode", "--records-dir", scratch.path])
        #expect(result.status == 0, "\(result.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: scratch.path)
        #expect(files.count == 2 && files.allSatisfy { $0.hasSuffix(".yaml") }, "\(files)")
        for file in files {
            let attributes = try FileManager.default.attributesOfItem(atPath: scratch.path + "/" + file)
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(file)")
        }
        if let bearer = result.stdout.split(separator: "\n").last { Credentials.register(secret: String(bearer.drop { $0 != ":" }.dropFirst())) }
    }

    @Test("kubeconfig: an https server, a PEM CA, a token from standard input; errors name the flag")
    func kubeconfigCommand() throws {
        let certificates = try TestCertificates()
        let printed = try Binary.run(
            ["kubeconfig", "--server", "https://203.0.113.5:6443", "--certificate-authority", certificates.path("ca.pem"), "--name", "prod"],
            input: "kubeconfig-u-1:secretvalue\r\n")
        #expect(printed.status == 0, "\(printed.stderr)")
        #expect(printed.stdout.contains(#"token: "kubeconfig-u-1:secretvalue""#))
        #expect(printed.stdout.contains(#"server: "https://203.0.113.5:6443""#) && printed.stdout.contains("certificate-authority-data: "))
        #expect(printed.stdout.contains(#"current-context: "prod""#))
        let plain = try Binary.run(["kubeconfig", "--server", "http://x:80"], input: "t")
        #expect(plain.status != 0 && plain.stderr.contains("--server \"http://x:80\" must be an https:// URL"), "\(plain.stderr)")
        let noCA = try Binary.run(["kubeconfig", "--server", "https://x", "--certificate-authority", "/nonexistent.pem"], input: "t")
        #expect(noCA.status != 0 && noCA.stderr.contains("--certificate-authority /nonexistent.pem"), "\(noCA.stderr)")
        let noToken = try Binary.run(["kubeconfig", "--server", "https://x"], input: "")
        #expect(noToken.status != 0 && noToken.stderr.contains("no token"), "\(noToken.stderr)")
    }

    @Test("The Go service's CLI forms: -v, h, and single-dash long flags")
    func goCLIForms() throws {
        let version = try Binary.run(["-v"])
        #expect(version.status == 0 && version.stdout.contains("0.1.0"), "\(version.stderr)")
        #expect(try Binary.run(["--version"]).stdout == version.stdout)
        let help = try Binary.run(["h"])
        #expect(help.status == 0 && help.stdout.contains("SUBCOMMANDS"), "\(help.stderr)")
        #expect(try Binary.run(["h", "serve"]).stdout.contains("--records-dir"))
        let minted = try Binary.run(["-debug", "-namespace", "dash-ns", "token", "create", "--user", "u-x", "--output", "-"])
        #expect(minted.status == 0, "\(minted.stderr)")
        #expect(minted.stdout.contains("namespace: \"dash-ns\""))
        #expect(try Binary.run(["-namespace=eq-ns", "token", "create", "--user", "u-x", "--output", "-"]).stdout.contains("namespace: \"eq-ns\""))
        let kubeconfig = try Binary.run(["-kubeconfig", "/nonexistent/kubeconfig", "serve"])
        #expect(kubeconfig.stderr.contains("kubeconfig /nonexistent/kubeconfig cannot be read"), "\(kubeconfig.stderr)")
        let listen = try Binary.run(["serve", "--records-dir", "/tmp", "-listen", "6440"])
        #expect(listen.stderr.contains("--listen: listen address \"6440\" must look like"), "\(listen.stderr)")
    }

    @Test("token create --output - prints manifests for kubectl apply and the bearer token on stderr")
    func tokenCreateOutput() throws {
        let result = try Binary.run(["--namespace", "cattle-system", "token", "create", "--user", "u-abc12", "--group", "g://1", "--output", "-"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("kind: ClusterAuthToken"))
        #expect(result.stdout.contains("kind: Secret"))
        #expect(result.stdout.contains("kind: ClusterUserAttribute"))
        let bearer = try #require(result.stderr.split(separator: "\n").last)
        #expect(bearer.hasPrefix("kubeconfig-u-abc12"))
        #expect(bearer.split(separator: ":")[1].count == 54)
        #expect(!result.stdout.contains(bearer.split(separator: ":")[1]))
    }

    @Test(
        "Usage errors name the flag and explain",
        arguments: [
            (["serve"], "not running in a cluster (KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set) and no --kubeconfig"),
            (["--kubeconfig", "/nonexistent/kubeconfig", "serve"], "kubeconfig /nonexistent/kubeconfig cannot be read"),
            (["serve", "--records-dir", "/nonexistent"], "--records-dir: records directory /nonexistent does not exist"),
            (["serve", "--records-dir", "/tmp", "--listen", "6440"], "--listen: listen address \"6440\" must look like"),
            (["token", "create", "--user", "U_X", "--output", "-"], "--user \"U_X\" is not a valid Kubernetes name"),
            (["token", "create", "--user", "u-x", "--ttl", "soon", "--output", "-"], "--ttl \"soon\" is not a duration"),
        ])
    func usageErrors(arguments: [String], message: String) throws {
        let result = try Binary.run(arguments)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    @Test("Global flags go before the subcommand, as in the Go service")
    func globalFlagsBeforeSubcommand() throws {
        let result = try Binary.run(["--debug", "--namespace", "other-ns", "token", "create", "--user", "u-x", "--output", "-"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("namespace: \"other-ns\""))
        #expect(try Binary.run(["--help"]).stdout.contains("serve"))
    }
}
