import TandemEngine
import TandemTemplate

/// The sampling fields completions and chat completions share, read into the engine's `SamplingParams`.
/// Parameters Tandem does not implement are accepted only at their no-op values.
enum SamplingFields {
    /// - Parameter maxTokens: the request's token limit, already read (nil: the caller's default).
    static func read(_ fields: inout RequestFields, maxTokens: Int?) throws(APIError) -> SamplingParams {
        var params = SamplingParams()
        if let temperature = try fields.number("temperature", in: 0...1_000) { params.temperature = Float(temperature) }
        if let topP = try fields.number("top_p", in: 0...1) {
            guard topP > 0 else { throw .invalid("top_p", "top_p must be in (0, 1], got 0") }
            params.topP = Float(topP)
        }
        if let topK = try fields.integer("top_k", in: -1...Int(Int32.max)) { params.topK = topK }
        if let seed = try fields.integer("seed", in: Int.min...Int.max) { params.seed = UInt64(bitPattern: Int64(seed)) }
        if let stop = try fields.strings("stop") {
            guard !stop.contains("") else { throw .invalid("stop", "stop strings must not be empty") }
            params.stop = stop
        }
        if let ids = try fields.integers("stop_token_ids") {
            guard ids.allSatisfy({ $0 >= 0 }) else { throw .invalid("stop_token_ids", "stop_token_ids must be ≥ 0") }
            params.stopTokenIDs = ids
        }
        if let ignore = try fields.bool("ignore_eos") { params.ignoreEOS = ignore }
        if let skip = try fields.bool("skip_special_tokens") { params.skipSpecialTokens = skip }
        if let maxTokens { params.maxTokens = maxTokens }
        try fields.unsupported("presence_penalty") { $0.number == 0 }
        try fields.unsupported("frequency_penalty") { $0.number == 0 }
        try fields.unsupported("repetition_penalty") { $0.number == 1 }
        try fields.unsupported("min_tokens") { $0.number == 0 }
        try fields.unsupported("logit_bias") { $0 == .dictionary([]) }
        // Metadata for the caller's own records (OpenAI's abuse monitoring); it changes nothing here.
        _ = try fields.string("user")
        return params
    }

    /// `stream` and `stream_options.include_usage`.
    static func streaming(_ fields: inout RequestFields) throws(APIError) -> (stream: Bool, includeUsage: Bool) {
        let stream = try fields.bool("stream") ?? false
        guard let options = fields.value("stream_options") else { return (stream, false) }
        guard stream else { throw .invalid("stream_options", "stream_options is only allowed when stream is true") }
        var optionFields = try RequestFields(options)
        let includeUsage = try optionFields.bool("include_usage") ?? false
        _ = try optionFields.bool("continuous_usage_stats").map { (flag) throws(APIError) in
            if flag { throw .invalid("stream_options", "stream_options.continuous_usage_stats is not supported by Tandem") }
        }
        do { try optionFields.finish() } catch { throw .invalid("stream_options", "stream_options: \(error.message)") }
        return (stream, includeUsage)
    }
}
