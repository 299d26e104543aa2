// swift-tools-version:6.0
import PackageDescription

// Layering (lower never imports higher): see Documentation/Architecture.md.
let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Berth",
    products: [
        .library(name: "BerthSystem", targets: ["BerthSystem"]),
        .library(name: "BerthNamespaces", targets: ["BerthNamespaces"]),
        .library(name: "BerthCgroups", targets: ["BerthCgroups"]),
        .library(name: "BerthNetLink", targets: ["BerthNetLink"]),
        .library(name: "BerthIPAM", targets: ["BerthIPAM"]),
        .library(name: "BerthPortMapper", targets: ["BerthPortMapper"]),
        .library(name: "BerthNetwork", targets: ["BerthNetwork"]),
        .library(name: "BerthImageLayers", targets: ["BerthImageLayers"]),
        .library(name: "BerthLinks", targets: ["BerthLinks"]),
        .library(name: "Berth", targets: ["Berth"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // C: only what Swift cannot do safely (see Documentation/Architecture.md).
        .target(name: "CBerthShim", cSettings: [.define("_GNU_SOURCE")]),
        .systemLibrary(name: "CNetlink", pkgConfig: "libnl-route-3.0",
                       providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .target(name: "CBerthLayersShim", cSettings: [.define("_GNU_SOURCE")]),

        // Libraries, bottom to top.
        .target(name: "BerthSystem", dependencies: ["CBerthShim"], swiftSettings: strict),
        .target(name: "BerthNamespaces", dependencies: ["BerthSystem", "CBerthShim", "CSeccomp"], swiftSettings: strict),
        .target(name: "BerthCgroups", dependencies: ["BerthSystem"], swiftSettings: strict),
        .target(name: "BerthNetLink", dependencies: ["BerthSystem", "BerthNamespaces", "CNetlink"], swiftSettings: strict),
        .target(name: "BerthIPAM", dependencies: ["BerthSystem"], swiftSettings: strict),
        .target(name: "BerthPortMapper", dependencies: ["BerthSystem", "CBerthShim"], swiftSettings: strict),
        .target(name: "BerthNetwork", dependencies: ["BerthSystem", "BerthNamespaces", "BerthNetLink", "BerthIPAM", "BerthPortMapper"], swiftSettings: strict),
        .target(name: "BerthImageLayers", dependencies: ["BerthSystem", "CZlib", "CCrypto", "CBerthLayersShim"], swiftSettings: strict),
        .target(name: "BerthLinks", dependencies: ["BerthSystem"], swiftSettings: strict),
        .target(name: "Berth", dependencies: [
            "BerthSystem", "BerthNamespaces", "BerthCgroups", "BerthNetLink", "BerthIPAM",
            "BerthPortMapper", "BerthNetwork", "BerthImageLayers", "BerthLinks", "CBerthShim",
        ], swiftSettings: strict),

        // Shared test fixtures (busybox rootfs, sandbox host netns, unique names).
        .target(name: "BerthTestSupport", dependencies: ["BerthSystem", "BerthNamespaces"],
                path: "Tests/BerthTestSupport", swiftSettings: strict),

        // Examples: argument parsing, then library calls.
        .executableTarget(name: "berth-ns", dependencies: ["BerthNamespaces", "BerthCgroups",
            .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/berth-ns", swiftSettings: strict),
        .executableTarget(name: "berth-cgroups", dependencies: ["BerthCgroups", "BerthSystem",
            .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/berth-cgroups", swiftSettings: strict),
        .executableTarget(name: "berth-netlink", dependencies: ["BerthNetLink", "BerthNamespaces",
            .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/berth-netlink", swiftSettings: strict),
        .executableTarget(name: "berth-ipam", dependencies: ["BerthIPAM", "BerthNetLink",
            .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/berth-ipam", swiftSettings: strict),
        .executableTarget(name: "berth-portmap", dependencies: ["BerthPortMapper", "BerthNamespaces", "BerthNetwork",
            .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/berth-portmap", exclude: ["proxy"], swiftSettings: strict),
        // The userland proxy as a lean process of its own (no Foundation): docker-proxy's flags.
        .executableTarget(name: "berth-proxy", dependencies: ["BerthPortMapper"],
            path: "Examples/berth-portmap/proxy", exclude: ["hot-symbols.txt"], swiftSettings: strict),
        .executableTarget(name: "berth-layers", dependencies: ["BerthImageLayers",
            .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/berth-layers", swiftSettings: strict),
        .executableTarget(name: "berth", dependencies: ["Berth", "BerthSystem", "BerthNamespaces", "BerthCgroups", "BerthImageLayers",
            .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/berth",
            swiftSettings: strict + [.unsafeFlags(["-static-executable"])],
            // The Swift runtime and Foundation linked in: every `berth` command (and each `-d`
            // container's monitor) starts in ~4 ms instead of ~20 ms of dynamic symbol binding.
            // lld, because gold prints glibc's unsilenceable mktemp link warning for static Foundation.
            linkerSettings: [.unsafeFlags(["-static-executable", "-use-ld=lld"])]),
        .executableTarget(name: "berth-bench", dependencies: [
            "BerthSystem", "BerthNamespaces", "BerthCgroups", "BerthNetLink", "BerthIPAM",
            "BerthPortMapper", "BerthImageLayers", "BerthNetwork",
            .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/berth-bench", swiftSettings: strict),

        // One test target per module.
        .testTarget(name: "BerthSystemTests", dependencies: ["BerthSystem"], swiftSettings: strict),
        .testTarget(name: "BerthNamespacesTests", dependencies: ["BerthNamespaces", "BerthCgroups", "BerthTestSupport"], swiftSettings: strict),
        .testTarget(name: "BerthCgroupsTests", dependencies: ["BerthCgroups", "BerthTestSupport"], swiftSettings: strict),
        .testTarget(name: "BerthNetLinkTests", dependencies: ["BerthNetLink", "BerthTestSupport"], swiftSettings: strict),
        .testTarget(name: "BerthIPAMTests", dependencies: ["BerthIPAM", "BerthTestSupport"], swiftSettings: strict),
        .testTarget(name: "BerthNetworkTests", dependencies: ["BerthNetwork", "BerthTestSupport"], swiftSettings: strict),
        .testTarget(name: "BerthPortMapperTests", dependencies: ["BerthPortMapper", "BerthTestSupport"], swiftSettings: strict),
        .testTarget(name: "BerthImageLayersTests", dependencies: ["BerthImageLayers", "BerthTestSupport"], swiftSettings: strict),
        .testTarget(name: "BerthLinksTests", dependencies: ["BerthLinks"], swiftSettings: strict),
        .testTarget(name: "BerthTests", dependencies: ["Berth", "BerthLinks", "BerthTestSupport"], swiftSettings: strict),
    ]
)
