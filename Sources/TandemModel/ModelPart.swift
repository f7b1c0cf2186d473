import TandemParallel
import TandemTensor

/// The part of a decoder one pipeline stage holds: a contiguous run of its layers, the token embedding when it
/// is the first stage, and the final norm and LM head when it is the last (a tied head: the embedding's table on
/// the last stage too). A single-stage model holds everything. With expert parallelism, each rank of the stage
/// holds whole experts of every MoE layer, placed by `expertPlacement`, instead of a slice of every expert.
public struct ModelPart: Sendable, Equatable, CustomStringConvertible {
    /// The decoder layers held, as indices into the model's layers.
    public let layers: Range<Int>
    /// Whether the tokens are embedded here (the first stage).
    public let embedsTokens: Bool
    /// Whether the logits are computed here (the last stage).
    public let computesLogits: Bool
    /// How a MoE layer's experts are spread over the stage's ranks; nil: every expert tensor-parallel.
    public var expertPlacement: ExpertPlacement?

    /// Stage `stage` (0-based) of `partition`.
    public init(stage: Int, of partition: PipelinePartition) {
        precondition((0..<partition.layerCounts.count).contains(stage), "stage \(stage) of a \(partition.layerCounts.count)-stage partition")
        layers = partition.layers(ofStage: stage)
        embedsTokens = stage == 0
        computesLogits = stage == partition.layerCounts.count - 1
    }

    /// Every layer of a `layerCount`-layer model, both ends included.
    public static func whole(layerCount: Int) -> ModelPart {
        ModelPart(layers: 0..<layerCount, embedsTokens: true, computesLogits: true)
    }

    private init(layers: Range<Int>, embedsTokens: Bool, computesLogits: Bool) {
        self.layers = layers
        self.embedsTokens = embedsTokens
        self.computesLogits = computesLogits
    }

    /// Whether this is the whole model.
    public var isWhole: Bool { embedsTokens && computesLogits }

    public var description: String {
        let ends = [embedsTokens ? "embedding" : nil, computesLogits ? "norm and LM head" : nil].compactMap { $0 }
        let experts = expertPlacement.map { ", experts placed \($0.rawValue)" } ?? ""
        return "layers \(layers.lowerBound)–\(layers.upperBound - 1)" + (ends.isEmpty ? "" : " + " + ends.joined(separator: ", ")) + experts
    }
}

/// What one stage's forward pass hands on.
public enum StageOutput {
    /// Hidden states `[tokens, hiddenSize]` (fp32) for the next stage.
    case hidden(Tensor)
    /// The last stage's logits `[logitRows, vocabularySize]`, on the rank that gathers them (nil on the others).
    case logits(Tensor?)
}
