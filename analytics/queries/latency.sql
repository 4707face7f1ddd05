-- latency: total latency and time to first token percentiles (exact) by
-- provider and routed model, over allowed requests. TTFT covers streams
-- that produced a token; 0 when there were none.
SELECT
    provider,
    if(model_routed = '', model_requested, model_routed)              AS model,
    count()                                                           AS requests,
    quantileExact(0.5)(latency_ms)                                    AS latency_p50_ms,
    quantileExact(0.95)(latency_ms)                                   AS latency_p95_ms,
    quantileExact(0.99)(latency_ms)                                   AS latency_p99_ms,
    countIf(stream = 1 AND ttft_ms > 0)                               AS streams,
    if(streams = 0, 0, quantileExactIf(0.5)(ttft_ms, stream = 1 AND ttft_ms > 0))  AS ttft_p50_ms,
    if(streams = 0, 0, quantileExactIf(0.95)(ttft_ms, stream = 1 AND ttft_ms > 0)) AS ttft_p95_ms,
    if(streams = 0, 0, quantileExactIf(0.99)(ttft_ms, stream = 1 AND ttft_ms > 0)) AS ttft_p99_ms
FROM {{.Database}}.inference_log FINAL
WHERE timestamp >= toDateTime(@since) AND timestamp < toDateTime(@until) AND allowed = 1 AND provider != ''
GROUP BY provider, model
ORDER BY provider, model
