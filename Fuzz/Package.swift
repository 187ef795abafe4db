// swift-tools-version:6.1
// libFuzzer targets for the parsers that read untrusted input. Built by scripts/fuzz with
// -sanitize=fuzzer,address; kept out of the main package so normal builds are unaffected.
import PackageDescription

let package = Package(
    name: "kube-api-auth-fuzz",
    dependencies: [
        .package(name: "kube-api-auth", path: ".."),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .target(name: "FuzzMain"),
        .executableTarget(name: "FuzzReviewDecoder", dependencies: ["FuzzMain", .product(name: "RancherAuth", package: "kube-api-auth")]),
        .executableTarget(name: "FuzzRecordListPage", dependencies: ["FuzzMain", .product(name: "RancherAuth", package: "kube-api-auth")]),
        .executableTarget(name: "FuzzHashParser", dependencies: ["FuzzMain", .product(name: "RancherAuth", package: "kube-api-auth")]),
        .executableTarget(
            name: "FuzzResponseFraming",
            dependencies: [
                "FuzzMain", .product(name: "KubeAPIAuth", package: "kube-api-auth"), .product(name: "NIOCore", package: "swift-nio"),
            ]),
        .executableTarget(
            name: "FuzzEmergencyToken",
            dependencies: ["FuzzMain", .product(name: "RancherAuth", package: "kube-api-auth"), .product(name: "Crypto", package: "swift-crypto")]),
    ]
)
