import ArgumentParser
import Foundation
import TandemModel

/// `tandem inspect FILE.gguf`: what a GGUF file holds — its metadata and tensors — after checking its layout.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a GGUF file's metadata and tensors (name, type, shape, bytes, offset), checking its layout.",
        discussion: """
            Reads the header only (the data is mapped, not read). The file is checked as Tandem checks any file it \
            loads: a truncated file, a misaligned or overlapping tensor, an unknown tensor type or an impossible \
            shape is an error naming the tensor. Shapes are printed in row-major order ([rows, columns]), as \
            PyTorch and safetensors give them; GGUF stores them the other way round.
            """)

    @Argument(help: "A .gguf file.")
    var file: String

    @Option(name: .customLong("max-array"), help: "Array elements to print per metadata value.")
    var maxArray = 4

    func run() throws {
        let gguf: GGUFFile
        do {
            gguf = try GGUFFile(path: file)
        } catch {
            throw CommandFailure("\(error)")
        }
        let total = gguf.tensors.reduce(0) { $0 + $1.byteCount }
        print("GGUF v\(gguf.version): \(gguf.metadata.count) metadata keys, \(gguf.tensors.count) tensors, \(total) bytes of data at byte \(gguf.dataOffset) (alignment \(gguf.alignment))")
        print("metadata:")
        for (key, value) in gguf.metadata { print("  \(key) = \(Self.shown(value, limit: maxArray))") }
        print("tensors:")
        let width = gguf.tensors.map(\.name.count).max() ?? 0
        for tensor in gguf.tensors {
            let name = tensor.name.padding(toLength: width, withPad: " ", startingAt: 0)
            print("  \(name)  \(tensor.type.description.padding(toLength: 7, withPad: " ", startingAt: 0)) \(tensor.shape)  \(tensor.byteCount) bytes at \(tensor.offset)")
        }
        var byType: [String: (count: Int, bytes: Int)] = [:]
        for tensor in gguf.tensors { byType[tensor.type.description, default: (0, 0)].count += 1; byType[tensor.type.description]!.bytes += tensor.byteCount }
        print("by type: " + byType.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.count) tensors, \($0.value.bytes) bytes" }.joined(separator: "; "))
    }

    /// A value with at most `limit` array elements.
    static func shown(_ value: GGUFValue, limit: Int) -> String {
        guard case let .array(type, values) = value else { return value.description }
        let head = values.prefix(limit).map { shown($0, limit: limit) }.joined(separator: ", ")
        return "[\(values.count) × \(type)]" + (values.isEmpty ? "" : " " + head + (values.count > limit ? ", …" : ""))
    }
}
