-- spend: requests, tokens and cost per day and per {{.ByName}}.
--
-- Every query in this folder reads inference_log FINAL, which collapses
-- rows with the same sort key (the same request written twice by a spool
-- replay) before aggregating: the numbers count each request once even
-- before ClickHouse merges the duplicates away. @since and @until are Unix
-- seconds, @until exclusive. An alias that names a column (cost_micros)
-- means the aggregate from there on: ClickHouse substitutes aliases, so
-- derived columns use the alias, never the aggregate again.
SELECT
    toDate(timestamp)                 AS day,
    {{.By}}                           AS {{.ByName}},
    count()                           AS requests,
    sum(toUInt64(prompt_tokens))      AS prompt_tokens,
    sum(toUInt64(completion_tokens))  AS completion_tokens,
    sum(cost_micros)                  AS cost_micros,
    cost_micros / 1000000             AS cost_usd
FROM {{.Database}}.inference_log FINAL
WHERE timestamp >= toDateTime(@since) AND timestamp < toDateTime(@until)
GROUP BY day, {{.ByName}}
ORDER BY day, cost_micros DESC, {{.ByName}}
