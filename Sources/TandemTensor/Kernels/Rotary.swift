#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How rotary position embeddings scale beyond the trained context (`rope_scaling` in a config.json).
public enum RopeScaling: Sendable, Equatable {
    /// Plain RoPE.
    case none
    /// Positions divided by `factor`.
    case linear(factor: Double)
    /// Llama 3's frequency-dependent scaling: long wavelengths divided by `factor`, short ones kept, a smooth
    /// blend between `originalMaxPositions / lowFrequencyFactor` and `originalMaxPositions / highFrequencyFactor`.
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalMaxPositions: Int)
}

/// Rotary position embeddings in the "rotate half" layout of Hugging Face Llama: for a head vector of `d`
/// values and frequency i < d/2, `(x[i], x[i + d/2])` turns by the angle `position · θ_i`.
public struct RotaryEmbedding: Sendable {
    /// The head dimension.
    public let dimension: Int
    /// The inverse frequency of each pair, after scaling.
    public let inverseFrequencies: [Double]

    public init(dimension: Int, theta: Double, scaling: RopeScaling) {
        precondition(dimension > 0 && dimension % 2 == 0, "rotary dimension must be even, got \(dimension)")
        self.dimension = dimension
        let base = (0..<(dimension / 2)).map { 1 / pow(theta, Double(2 * $0) / Double(dimension)) }
        switch scaling {
        case .none:
            inverseFrequencies = base
        case let .linear(factor):
            inverseFrequencies = base.map { $0 / factor }
        case let .llama3(factor, low, high, original):
            let lowWavelength = Double(original) / low
            let highWavelength = Double(original) / high
            inverseFrequencies = base.map { frequency in
                let wavelength = 2 * Double.pi / frequency
                if wavelength < highWavelength { return frequency }
                if wavelength > lowWavelength { return frequency / factor }
                let smooth = (Double(original) / wavelength - low) / (high - low)
                return (1 - smooth) * frequency / factor + smooth * frequency
            }
        }
    }

    /// Rotates `heads` head vectors stored one after another at `values`, all at `position`.
    public func apply(_ values: UnsafeMutablePointer<Float>, heads: Int, position: Int) {
        let half = dimension / 2
        for pair in 0..<half {
            let angle = Double(position) * inverseFrequencies[pair]
            let (cosine, sine) = (Float(cos(angle)), Float(sin(angle)))
            for head in 0..<heads {
                let vector = values + head * dimension
                let (first, second) = (vector[pair], vector[pair + half])
                vector[pair] = first * cosine - second * sine
                vector[pair + half] = second * cosine + first * sine
            }
        }
    }
}
