// config.json: refused with a `ModelLoadError`, or a configuration whose sizes are positive and consistent.
import FuzzSupport
import Foundation
import TandemModel

exit(fuzzerMain(fuzz))

func fuzz(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let data else { return 0 }
    guard let json = try? JSONSerialization.jsonObject(with: Data(bytes: data, count: count)) as? [String: Any],
        let config = try? ModelConfig(json: json, path: "config.json")
    else { return 0 }
    precondition(config.hiddenSize > 0 && config.headCount > 0 && config.keyValueHeadCount > 0 && config.headDimension > 0, "non-positive size")
    precondition(config.headCount % config.keyValueHeadCount == 0, "heads not a multiple of key/value heads")
    precondition(config.vocabularySize > 0 && config.layerCount > 0 && config.intermediateSize > 0, "non-positive size")
    return 0
}
