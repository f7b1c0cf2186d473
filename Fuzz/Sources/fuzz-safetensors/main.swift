// A whole safetensors file as the loader maps it: it is refused with a `ModelLoadError`, or every tensor it
// describes lies inside the data section with exactly the bytes its dtype and shape need.
import FuzzSupport
import Foundation
@testable import TandemModel

exit(fuzzerMain(fuzz))

func fuzz(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let data else { return 0 }
    guard let layout = try? SafetensorsFile.layout(of: UnsafeRawBufferPointer(start: data, count: count), path: "fuzz.safetensors") else {
        return 0
    }
    let dataBytes = count - layout.dataOffset
    precondition(layout.dataOffset >= 8 && dataBytes >= 0, "data offset \(layout.dataOffset) outside the file")
    for (key, info) in layout.tensors {
        precondition(info.range.lowerBound >= 0 && info.range.upperBound <= dataBytes, "tensor \(key) outside the data")
        precondition(info.range.count == info.shape.reduce(info.dtype.byteSize, *), "tensor \(key) has the wrong byte count")
    }
    return 0
}
