// swift-tools-version:6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "kube-api-auth",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kube-api-auth", targets: ["kube-api-auth"]),
        .library(name: "RancherAuth", targets: ["RancherAuth"]),
        .library(name: "KubeAPIAuth", targets: ["KubeAPIAuth"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
    ],
    targets: [
        // OpenSSL's libcrypto, for scrypt (EVP_PBE_scrypt); swift-crypto covers SHA-2 and SHA-3.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // glibc's malloc.h (malloc_trim, mallinfo2), for handing freed memory back and measuring it.
        .systemLibrary(name: "CMalloc"),
        // Pure rules: hash formats, token parsing, TokenReview wire format, records, decisions. No I/O.
        .target(
            name: "RancherAuth",
            dependencies: [
                "COpenSSL",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: strictSettings
        ),
        // Minimal Kubernetes API client: kubeconfig / in-cluster configuration, typed errors from
        // Status objects, get/list/watch/create/update/patch.
        .target(
            name: "KubeClient",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),
        // The service, in rooms the compiler keeps apart (docs/architecture.md draws the graph):
        // the core knows no HTTP and no door; the HTTP layer knows no door; a door never sees the
        // other; only the assembly sees everything.
        //
        // The core: the authentication core and its workers, the records (directory, Kubernetes
        // sync, store, snapshot file, census), emergency administration, diagnosis, logging, audit
        // and metrics vocabulary. No NIOHTTP1, NIOSSL or door.
        .target(
            name: "KubeAPIAuthCore",
            dependencies: [
                "RancherAuth",
                .target(name: "CMalloc", condition: .when(platforms: [.linux])),
                "KubeClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),
        // Serving HTTP: listeners, TLS and its reload, timeouts, the connection cap, answers.
        .target(
            name: "KubeAPIAuthHTTP",
            dependencies: [
                "KubeAPIAuthCore",
                "RancherAuth",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // The token-webhook door: TokenReview and SelfSubjectReview, probes, metrics, its HTTP/1 handler.
        .target(
            name: "KubeAPIAuthWebhook",
            dependencies: [
                "KubeAPIAuthCore",
                "KubeAPIAuthHTTP",
                "RancherAuth",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The authenticating-proxy door: request policy, forwarding, upstream pool, sessions.
        .target(
            name: "KubeAPIAuthProxy",
            dependencies: [
                "KubeAPIAuthCore",
                "KubeAPIAuthHTTP",
                "RancherAuth",
                "KubeClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The assembly: one ServiceConfiguration in, one ServiceGroup out, with either door.
        .target(
            name: "KubeAPIAuth",
            dependencies: [
                "KubeAPIAuthCore",
                "KubeAPIAuthHTTP",
                "KubeAPIAuthWebhook",
                "KubeAPIAuthProxy",
                "RancherAuth",
                "KubeClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // The executable: flags → configuration → run. It imports neither KubeClient nor NIO.
        .executableTarget(
            name: "kube-api-auth",
            dependencies: [
                "KubeAPIAuthHTTP",
                "KubeAPIAuthCore",
                "KubeAPIAuth",
                "RancherAuth",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Where the records' bytes go, per kind (see docs/benchmarks.md); not shipped.
        .executableTarget(
            name: "records-memory-bench",
            dependencies: ["KubeAPIAuthCore", "RancherAuth"],
            swiftSettings: strictSettings
        ),
        // Times the parts of a review in-process (see docs/benchmarks.md); not shipped.
        .executableTarget(
            name: "review-path-bench",
            dependencies: [
                "KubeClient",
                "KubeAPIAuthCore",
                "KubeAPIAuthHTTP",
                "KubeAPIAuthWebhook",
                "KubeAPIAuthProxy",
                "KubeAPIAuth",
                "RancherAuth",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Floors under any NIO server here, measured by bench/proxy and bench/run (see docs/benchmarks.md); not shipped.
        .executableTarget(
            name: "nio-floor-bench",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        // An in-repo Kubernetes API server for tests and benchmarks; not shipped.
        .target(
            name: "KubeAPITestServer",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "kube-api-test-server",
            dependencies: [
                "KubeAPITestServer",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        // Helpers shared by the test targets (not shipped).
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: strictSettings),
        .testTarget(
            name: "RancherAuthTests",
            dependencies: [
                "RancherAuth",
                "TestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "KubeAPIAuthTests",
            dependencies: [
                "KubeAPIAuthCore",
                "KubeAPIAuthHTTP",
                "KubeAPIAuthWebhook",
                "KubeAPIAuthProxy",
                "KubeAPIAuth",
                "KubeClient",
                "TestSupport",
                "RancherAuth",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "KubeClientTests",
            dependencies: [
                "KubeClient",
                "KubeAPITestServer",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "KubeAPITestServerTests",
            dependencies: [
                "KubeAPITestServer",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // Runs the built `kube-api-auth` binary as a process and talks to it with curl and AsyncHTTPClient.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "KubeAPIAuthProxy",
                "KubeAPIAuthCore",
                "KubeAPITestServer",
                "TestSupport",
                "KubeClient",
                "KubeAPIAuth",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
