/// libFuzzer's driver, run on one harness: the binary's options are libFuzzer's (`-runs=`, `-max_total_time=`,
/// corpus directories). Each harness's `main.swift` is `exit(fuzzerMain(harness))`.
///
/// The harnesses keep SwiftPM's own `main` (so no `-parse-as-library` is needed) and enter libFuzzer through
/// `LLVMFuzzerRunDriver`, which `-sanitize=fuzzer` links in.
public func fuzzerMain(_ harness: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    return runDriver(&argc, &argv, harness)
}

@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
