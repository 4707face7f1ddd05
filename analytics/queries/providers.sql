-- providers: cost per provider and routed model, with the cost of a
-- thousand tokens in micro-dollars. Denied requests (no provider) are left
-- out.
SELECT
    provider,
    if(model_routed = '', model_requested, model_routed)               AS model,
    count()                                                            AS requests,
    sum(toUInt64(prompt_tokens))                                       AS prompt_tokens,
    sum(toUInt64(completion_tokens))                                   AS completion_tokens,
    sum(cost_micros)                                                   AS cost_micros,
    cost_micros / 1000000                                              AS cost_usd,
    intDiv(cost_micros * 1000, greatest(prompt_tokens + completion_tokens, 1)) AS micros_per_1k_tokens
FROM {{.Database}}.inference_log FINAL
WHERE timestamp >= toDateTime(@since) AND timestamp < toDateTime(@until) AND provider != ''
GROUP BY provider, model
ORDER BY cost_micros DESC, provider, model
