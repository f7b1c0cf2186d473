#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs libFuzzer on `harness` and exits with its status: the binary's options are libFuzzer's (`-runs=`,
/// `-max_total_time=`, corpus directories). Each harness's `main.swift` is `fuzzerMain { input in … }`, failing
/// through `precondition`.
///
/// The harnesses keep SwiftPM's own `main` and enter libFuzzer through `LLVMFuzzerRunDriver`, which
/// `-sanitize=fuzzer` links in.
public func fuzzerMain(_ harness: @escaping (UnsafeBufferPointer<UInt8>) -> Void) -> Never {
    Harness.body = harness
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(runDriver(&argc, &argv) { data, count in
        Harness.body?(UnsafeBufferPointer(start: data, count: data == nil ? 0 : count))
        return 0
    })
}

/// The harness libFuzzer's C callback calls (a C function pointer cannot capture it). Set once, before the
/// driver starts; libFuzzer calls back on this thread only.
private enum Harness {
    nonisolated(unsafe) static var body: ((UnsafeBufferPointer<UInt8>) -> Void)?
}

@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
