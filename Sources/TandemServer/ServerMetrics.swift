import CoreMetrics
import Prometheus
import Synchronization
import TandemEngine

/// `GET /metrics`: vLLM's `vllm:` metrics under a `tandem:` prefix, in Prometheus' text format, each labelled
/// with `model_name`. Made through swift-metrics' API over a swift-prometheus factory of its own (no process-wide
/// bootstrap: two servers in one process keep separate metrics).
///
/// Per-request histograms are fed as requests finish (`observe`); the gauges and token counters are read from
/// the engine's counters when scraped (`render`), so the step path does no metrics work.
public final class ServerMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let running, waiting, kvCacheUsage, prefixCacheHitRate: CoreMetrics.Gauge
    private let promptTokens, generationTokens, prefixCacheQueries, prefixCacheHits, preemptions, restarts: CoreMetrics.Counter
    private let timeToFirstToken, interTokenLatency, endToEndLatency, queueTime, promptLength, generationLength: CoreMetrics.Recorder
    /// `tandem:request_success_total` by finish reason.
    private let finished: [FinishReason: CoreMetrics.Counter]
    /// Per data-parallel replica (label `engine`, as vLLM's), made as replicas first appear: running and waiting
    /// requests, KV usage, and the tokens it generated since its ranks last started.
    private let replicaGauges = Mutex<[[CoreMetrics.Gauge]]>([])
    private let makeReplicaGauges: @Sendable (Int) -> [CoreMetrics.Gauge]
    /// The engine's counters at the last scrape, to turn its totals into increments.
    private let lastSeen = Mutex<(stats: EngineStats, restarts: Int)>((EngineStats(), 0))

    /// Seconds: vLLM's buckets, with finer ones below 10 ms (a CPU engine's tokens come every few ms).
    static let latencyBuckets: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560,
    ]
    static let tokenBuckets: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000]

    public init(modelName: String) {
        let factory = PrometheusMetricsFactory(registry: registry)
        let labels = [("model_name", modelName)]
        var buckets: [String: [Double]] = [:]
        for name in ["time_to_first_token_seconds", "inter_token_latency_seconds", "e2e_request_latency_seconds", "request_queue_time_seconds"] {
            buckets["tandem:" + name] = Self.latencyBuckets
        }
        for name in ["request_prompt_tokens", "request_generation_tokens"] { buckets["tandem:" + name] = Self.tokenBuckets }
        var configured = factory
        configured.valueHistogramBuckets = buckets
        func gauge(_ name: String) -> CoreMetrics.Gauge { CoreMetrics.Gauge(label: "tandem:" + name, dimensions: labels, factory: configured) }
        func counter(_ name: String) -> CoreMetrics.Counter { CoreMetrics.Counter(label: "tandem:" + name, dimensions: labels, factory: configured) }
        func histogram(_ name: String) -> CoreMetrics.Recorder { CoreMetrics.Recorder(label: "tandem:" + name, dimensions: labels, aggregate: true, factory: configured) }
        running = gauge("num_requests_running")
        waiting = gauge("num_requests_waiting")
        kvCacheUsage = gauge("kv_cache_usage_perc")
        prefixCacheHitRate = gauge("prefix_cache_hit_rate")
        promptTokens = counter("prompt_tokens_total")
        generationTokens = counter("generation_tokens_total")
        prefixCacheQueries = counter("prefix_cache_queries_total")
        prefixCacheHits = counter("prefix_cache_hits_total")
        preemptions = counter("num_preemptions_total")
        restarts = counter("engine_restarts_total")
        timeToFirstToken = histogram("time_to_first_token_seconds")
        interTokenLatency = histogram("inter_token_latency_seconds")
        endToEndLatency = histogram("e2e_request_latency_seconds")
        queueTime = histogram("request_queue_time_seconds")
        promptLength = histogram("request_prompt_tokens")
        generationLength = histogram("request_generation_tokens")
        var finished: [FinishReason: CoreMetrics.Counter] = [:]
        for reason in [FinishReason.stop, .length, .abort] {
            finished[reason] = CoreMetrics.Counter(
                label: "tandem:request_success_total", dimensions: labels + [("finished_reason", reason.rawValue)], factory: configured)
        }
        self.finished = finished
        let replicaFactory = configured
        makeReplicaGauges = { replica in
            ["replica_num_requests_running", "replica_num_requests_waiting", "replica_kv_cache_usage_perc", "replica_generation_tokens"].map {
                CoreMetrics.Gauge(label: "tandem:" + $0, dimensions: labels + [("engine", String(replica))], factory: replicaFactory)
            }
        }
    }

    /// Records a finished request's timings and lengths.
    public func observe(_ metrics: RequestMetrics, finishReason: FinishReason) {
        if metrics.outputTokens > 0 { timeToFirstToken.record(metrics.timeToFirstTokenSeconds) }
        for gap in metrics.interTokenSeconds { interTokenLatency.record(gap) }
        endToEndLatency.record(metrics.endToEndSeconds)
        queueTime.record(metrics.queueSeconds)
        promptLength.record(metrics.promptTokens)
        generationLength.record(metrics.outputTokens)
        finished[finishReason]?.increment()
    }

    /// The Prometheus text for the engine's counters `stats`, each replica's `replicas` and its `restartCount` now.
    public func render(stats: EngineStats, replicas: [EngineStats] = [], restartCount: Int) -> String {
        replicaGauges.withLock { gauges in
            while gauges.count < replicas.count { gauges.append(makeReplicaGauges(gauges.count)) }
            for (gauge, replica) in zip(gauges, replicas) {
                gauge[0].record(replica.running)
                gauge[1].record(replica.waiting)
                gauge[2].record(replica.totalBlocks > 0 ? Double(replica.usedBlocks) / Double(replica.totalBlocks) : 0)
                gauge[3].record(replica.generatedTokens)
            }
        }
        return lastSeen.withLock { last in
            running.record(stats.running)
            waiting.record(stats.waiting)
            kvCacheUsage.record(stats.totalBlocks > 0 ? Double(stats.usedBlocks) / Double(stats.totalBlocks) : 0)
            prefixCacheHitRate.record(stats.prefixQueriedTokens > 0 ? Double(stats.prefixHitTokens) / Double(stats.prefixQueriedTokens) : 0)
            promptTokens.increment(by: max(stats.promptTokens - last.stats.promptTokens, 0))
            generationTokens.increment(by: max(stats.generatedTokens - last.stats.generatedTokens, 0))
            prefixCacheQueries.increment(by: max(stats.prefixQueriedTokens - last.stats.prefixQueriedTokens, 0))
            prefixCacheHits.increment(by: max(stats.prefixHitTokens - last.stats.prefixHitTokens, 0))
            preemptions.increment(by: max(stats.preemptions - last.stats.preemptions, 0))
            restarts.increment(by: max(restartCount - last.restarts, 0))
            last = (stats, restartCount)
            return registry.emitToString()
        }
    }
}
