-- errors: error and fallback rates by provider and routed model, over
-- allowed requests: errors carry an error code; fallbacks are requests
-- that used a fallback target (fell_back); cut_offs counts streams ended by a budget.
SELECT
    provider,
    if(model_routed = '', model_requested, model_routed) AS model,
    count()                                              AS requests,
    countIf(error != '')                                 AS errors,
    round(100 * errors / requests, 2)                    AS error_pct,
    countIf(fallbacks > 0)                               AS fell_back,
    round(100 * fell_back / requests, 2)                 AS fallback_pct,
    sum(toUInt64(attempts))                              AS total_attempts,
    countIf(cut_off = 1)                                 AS cut_offs
FROM {{.Database}}.inference_log FINAL
WHERE timestamp >= toDateTime(@since) AND timestamp < toDateTime(@until) AND allowed = 1 AND provider != ''
GROUP BY provider, model
ORDER BY provider, model
