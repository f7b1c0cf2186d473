// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Tandem",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "TandemTensor", targets: ["TandemTensor"]),
        .library(name: "TandemComm", targets: ["TandemComm"]),
        .library(name: "TandemParallel", targets: ["TandemParallel"]),
        .library(name: "TandemTokenizer", targets: ["TandemTokenizer"]),
        .library(name: "TandemTemplate", targets: ["TandemTemplate"]),
        .library(name: "TandemModel", targets: ["TandemModel"]),
        .library(name: "TandemEngine", targets: ["TandemEngine"]),
        .library(name: "TandemServer", targets: ["TandemServer"]),
        .executable(name: "tandem", targets: ["tandem"]),
    ],
    // `MPI`: the MPI backend (`TANDEM_BACKEND=mpi`), built against the system's MPI (pkg-config `mpi`: Debian's
    // libopenmpi-dev or libmpich-dev). Off by default, so the default build needs no MPI.
    traits: [.trait(name: "MPI", description: "The MPI backend of TandemComm (needs an MPI library and pkg-config's `mpi`)")],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // BLAS on Linux (Apple platforms use Accelerate).
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // x86 vector kernels (AVX2/FMA/F16C through target attributes, chosen at run time).
        .target(name: "CTandemKernels"),
        .target(
            name: "TandemTensor",
            dependencies: ["CTandemKernels", .target(name: "COpenBLAS", condition: .when(platforms: [.linux]))]),
        // Acquire/release atomics on shared-memory words (header-only C).
        .target(name: "CTandemAtomics"),
        // System calls Swift cannot call directly (header-only C).
        .target(name: "CTandemSystem"),
        // MPI (only with the `MPI` trait).
        .systemLibrary(name: "CMPI", pkgConfig: "mpi", providers: [.apt(["libopenmpi-dev"])]),
        .target(
            name: "TandemComm",
            dependencies: ["TandemTensor", "CTandemAtomics", "CTandemSystem", .target(name: "CMPI", condition: .when(traits: ["MPI"]))]),
        .target(name: "TandemParallel", dependencies: ["TandemComm", "TandemTensor"]),
        // Hugging Face tokenizer.json (byte-level BPE): no weights, no tensors, so a front end can use it alone.
        .target(name: "TandemTokenizer"),
        // Chat templates: the Jinja subset Hugging Face templates use, rendered as transformers renders them.
        .target(name: "TandemTemplate"),
        .target(name: "TandemModel", dependencies: ["TandemTensor", "TandemComm", "TandemParallel", "TandemTokenizer"]),
        .target(name: "TandemEngine", dependencies: ["TandemModel", "TandemTokenizer", "TandemTensor", "TandemComm", "TandemParallel"]),
        // The OpenAI-compatible server: its protocol (requests, responses, errors) first; HTTP next (issue 10).
        .target(
            name: "TandemServer",
            dependencies: [
                "TandemComm", "TandemEngine", "TandemModel", "TandemTemplate", "TandemTokenizer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        .executableTarget(
            name: "tandem",
            dependencies: [
                "TandemComm",
                "TandemEngine",
                "TandemModel",
                "TandemParallel",
                "TandemServer",
                "TandemTensor",
                "TandemTokenizer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // `bench serve`'s client (streamed responses).
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Worker program for the multi-process tests (started through `tandem launch`); not a product.
        .executableTarget(
            name: "tandem-test-worker", dependencies: ["TandemComm", "TandemParallel", "TandemTensor"], path: "Sources/TandemTestWorker"),
        // Links with a rate and a delay between network-namespace hosts (a userspace stand-in for tc netem), for the
        // multi-host tests and benchmarks; not a product.
        .executableTarget(
            name: "tandem-shaper", dependencies: ["CTandemSystem", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/TandemShaper"),
        // Helpers the test targets share (running the built executables); not a product.
        .target(name: "TandemTestSupport"),
        .testTarget(name: "TandemTensorTests", dependencies: ["TandemTensor"]),
        .testTarget(name: "TandemTemplateTests", dependencies: ["TandemTemplate", "TandemTestSupport"], exclude: ["Templates"]),
        .testTarget(
            name: "TandemServerTests",
            dependencies: [
                "TandemServer", "TandemEngine", "TandemModel", "TandemTemplate", "TandemTokenizer", "TandemTensor", "TandemParallel",
                "TandemTestSupport", "tandem",
            ]),
        .testTarget(
            name: "TandemEngineTests",
            dependencies: [
                "TandemEngine", "TandemModel", "TandemTokenizer", "TandemTensor", "TandemComm", "TandemParallel", "TandemTestSupport", "tandem",
                "CTandemKernels",
            ]),
        .testTarget(
            name: "TandemModelTests",
            dependencies: [
                "TandemEngine", "TandemModel", "TandemTokenizer", "TandemTensor", "TandemComm", "TandemParallel", "TandemTestSupport", "tandem",
                "CTandemKernels",
            ]),
        .testTarget(name: "TandemParallelTests", dependencies: ["TandemParallel", "TandemComm", "TandemTensor"]),
        .testTarget(
            name: "TandemCommTests", dependencies: ["TandemComm", "TandemTensor", "TandemTestSupport", "tandem", "tandem-test-worker", "tandem-shaper"]),
    ],
    swiftLanguageModes: [.v6]
)
