// config.json: refused with a `ModelLoadError`, or a configuration whose sizes are positive and consistent.
import Foundation
import FuzzSupport
import TandemModel

fuzzerMain { input in
    guard let json = try? JSONSerialization.jsonObject(with: Data(input)) as? [String: Any],
        let config = try? ModelConfig(json: json, path: "config.json")
    else { return }
    precondition(config.hiddenSize > 0 && config.headCount > 0 && config.keyValueHeadCount > 0 && config.headDimension > 0, "non-positive size")
    precondition(config.headCount % config.keyValueHeadCount == 0, "heads not a multiple of key/value heads")
    precondition(config.vocabularySize > 0 && config.layerCount > 0 && config.intermediateSize > 0, "non-positive size")
}
