// A whole GGUF file as the loader maps it: it is refused with a `ModelLoadError`, or every tensor it describes
// lies inside the data section, at an aligned offset, with the bytes its type's blocks and its dimensions need,
// and no two tensors holding bytes overlap.
import FuzzSupport
@testable import TandemModel

fuzzerMain { input in
    guard let layout = try? GGUFFile.layout(of: UnsafeRawBufferPointer(input), path: "fuzz.gguf") else { return }
    precondition(layout.alignment > 0 && layout.alignment & (layout.alignment - 1) == 0, "alignment \(layout.alignment)")
    precondition(layout.tensors.isEmpty || layout.dataOffset <= input.count, "data offset \(layout.dataOffset) outside the file")
    let dataBytes = input.count - layout.dataOffset
    var previousEnd = 0
    for tensor in layout.tensors.filter({ $0.byteCount > 0 }).sorted(by: { $0.offset < $1.offset }) {
        let block = tensor.type.block
        precondition(tensor.offset % layout.alignment == 0 && tensor.offset >= previousEnd, "tensor \(tensor.name) misplaced")
        precondition(tensor.offset + tensor.byteCount <= dataBytes, "tensor \(tensor.name) outside the data")
        precondition(tensor.dimensions[0] % block.elements == 0, "tensor \(tensor.name) splits a block")
        precondition(
            tensor.byteCount == tensor.dimensions.dropFirst().reduce(tensor.dimensions[0] / block.elements * block.bytes, *),
            "tensor \(tensor.name) has the wrong byte count")
        previousEnd = tensor.offset + tensor.byteCount
    }
}
