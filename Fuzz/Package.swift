// swift-tools-version: 6.1
// Fuzz harnesses for Tandem's parsers (libFuzzer). Not part of the main build: `make fuzz` builds them with
// `-sanitize=fuzzer,address -enable-testing` (see Fuzz/README.md) and runs each on its corpus.
import PackageDescription

/// Each harness: its name, the Tandem modules it reads (through `@testable import`).
let harnesses: [(String, [String])] = [
    ("fuzz-wire-header", ["TandemComm"]),
    ("fuzz-store-protocol", ["TandemComm"]),
    ("fuzz-peer-hello", ["TandemComm"]),
    ("fuzz-queue-frame", ["TandemComm"]),
    ("fuzz-liveness", ["TandemComm"]),
    ("fuzz-step-plan", ["TandemEngine"]),
    ("fuzz-safetensors", ["TandemModel"]),
    ("fuzz-gguf", ["TandemModel"]),
    ("fuzz-checkpoint-index", ["TandemModel"]),
    ("fuzz-model-config", ["TandemModel"]),
    ("fuzz-tokenizer", ["TandemTokenizer"]),
    ("fuzz-chat-template", ["TandemTemplate"]),
    ("fuzz-template-json", ["TandemTemplate"]),
    ("fuzz-openai-request", ["TandemServer", "TandemTemplate"]),
]

let package = Package(
    name: "TandemFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "Tandem", path: "..")],
    targets: [.target(name: "FuzzSupport")]
        + harnesses.map { name, modules in
            .executableTarget(
                name: name,
                dependencies: ["FuzzSupport"] + modules.map { .product(name: $0, package: "Tandem") },
                path: "Sources/\(name)")
        },
    swiftLanguageModes: [.v6]
)
