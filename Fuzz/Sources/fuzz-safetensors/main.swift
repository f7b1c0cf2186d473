// A whole safetensors file as the loader maps it: it is refused with a `ModelLoadError`, or every tensor it
// describes lies inside the data section with exactly the bytes its dtype and shape need.
import FuzzSupport
@testable import TandemModel

fuzzerMain { input in
    guard let layout = try? SafetensorsFile.layout(of: UnsafeRawBufferPointer(input), path: "fuzz.safetensors") else { return }
    let dataBytes = input.count - layout.dataOffset
    precondition(layout.dataOffset >= 8 && dataBytes >= 0, "data offset \(layout.dataOffset) outside the file")
    for (key, info) in layout.tensors {
        precondition(info.range.lowerBound >= 0 && info.range.upperBound <= dataBytes, "tensor \(key) outside the data")
        precondition(info.range.count == info.shape.reduce(info.dtype.byteSize, *), "tensor \(key) has the wrong byte count")
    }
}
