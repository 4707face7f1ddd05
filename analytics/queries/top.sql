-- top: the biggest spenders per {{.ByName}} over the period, with their
-- share of the total; at most @limit rows.
SELECT
    {{.By}}                           AS {{.ByName}},
    count()                           AS requests,
    sum(toUInt64(prompt_tokens) + toUInt64(completion_tokens)) AS tokens,
    sum(cost_micros)                  AS cost_micros,
    cost_micros / 1000000             AS cost_usd,
    round(100 * cost_micros / greatest((
        SELECT sum(cost_micros) FROM {{.Database}}.inference_log FINAL
        WHERE timestamp >= toDateTime(@since) AND timestamp < toDateTime(@until)
    ), 1), 2)                         AS share_pct
FROM {{.Database}}.inference_log FINAL
WHERE timestamp >= toDateTime(@since) AND timestamp < toDateTime(@until)
GROUP BY {{.ByName}}
ORDER BY cost_micros DESC, {{.ByName}}
LIMIT @limit
