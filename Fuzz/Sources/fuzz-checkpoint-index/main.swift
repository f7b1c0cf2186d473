// model.safetensors.index.json: refused, or every file it names is a plain name inside the checkpoint directory.
import Foundation
import FuzzSupport
@testable import TandemModel

fuzzerMain { input in
    guard let map = try? Checkpoint.weightMap(decoding: Data(input), path: "fuzz.index.json") else { return }
    for file in map.values {
        precondition(!file.isEmpty && !file.contains("/") && !file.hasPrefix(".") && !file.contains("\0"), "file name \(file.debugDescription) accepted")
    }
}
