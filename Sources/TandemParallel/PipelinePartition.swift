import TandemComm

/// Which decoder layers each pipeline stage holds, in order (vLLM's `get_pp_indices`): `layers ÷ stages` each,
/// and the remainder one apiece to the stages before the last, nearest the last first (the last stage also
/// holds the final norm and the LM head). `TANDEM_PP_LAYER_PARTITION=a,b,…` sets the counts instead.
public struct PipelinePartition: Sendable, Equatable, CustomStringConvertible {
    /// Layers per stage; all ≥ 1, summing to the model's layer count.
    public let layerCounts: [Int]

    /// - Parameter counts: the layers of each stage (nil: vLLM's even split).
    /// - Throws: `ParallelConfigError.invalidPartition` naming the numbers: more stages than layers, or counts
    ///   that are not one positive number per stage summing to the layer count.
    public init(layerCount: Int, stages: Int, counts: [Int]? = nil) throws(ParallelConfigError) {
        guard stages >= 1 else { throw .nonPositive(name: "pipelineParallelSize", value: stages) }
        guard layerCount >= stages else {
            throw .invalidPartition("pp \(stages) is more than the model's \(layerCount) layers; a stage would hold no layer")
        }
        if let counts {
            guard counts.count == stages else {
                throw .invalidPartition("\(TandemEnvironment.pipelineLayerPartition.name) lists \(counts.count) stages (\(Self.text(counts))), pp is \(stages)")
            }
            guard counts.allSatisfy({ $0 >= 1 }) else {
                throw .invalidPartition("\(TandemEnvironment.pipelineLayerPartition.name) gives a stage no layer (\(Self.text(counts)))")
            }
            guard counts.reduce(0, +) == layerCount else {
                throw .invalidPartition(
                    "\(TandemEnvironment.pipelineLayerPartition.name) sums to \(counts.reduce(0, +)) layers (\(Self.text(counts))), the model has \(layerCount)")
            }
            layerCounts = counts
            return
        }
        var counts = [Int](repeating: layerCount / stages, count: stages)
        for offset in 0..<(layerCount % stages) { counts[stages - 2 - offset] += 1 }
        layerCounts = counts
    }

    /// The partition `TANDEM_PP_LAYER_PARTITION` gives, or vLLM's even split when it is unset.
    ///
    /// - Throws: `ConfigError` for a value that is not a list of numbers, `ParallelConfigError` for one that does
    ///   not fit the model.
    public static func fromEnvironment(layerCount: Int, stages: Int) throws -> PipelinePartition {
        try PipelinePartition(layerCount: layerCount, stages: stages, counts: try TandemEnvironment.layerPartition())
    }

    /// The layers of `stage` (0-based), as indices into the model's layers.
    public func layers(ofStage stage: Int) -> Range<Int> {
        let start = layerCounts[..<stage].reduce(0, +)
        return start..<(start + layerCounts[stage])
    }

    public var description: String { Self.text(layerCounts) }

    private static func text(_ counts: [Int]) -> String { counts.map(String.init).joined(separator: ",") }
}
