// model.safetensors.index.json: refused, or every file it names is a plain name inside the checkpoint directory.
import FuzzSupport
import Foundation
@testable import TandemModel

exit(fuzzerMain(fuzz))

func fuzz(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let data else { return 0 }
    guard let map = try? Checkpoint.weightMap(decoding: Data(bytes: data, count: count), path: "fuzz.index.json") else { return 0 }
    for file in map.values {
        precondition(!file.isEmpty && !file.contains("/") && !file.hasPrefix(".") && !file.contains("\0"), "file name \(file.debugDescription) accepted")
    }
    return 0
}
