-- denials: denied requests by reason (the policy's deny code; "unknown"
-- when none was recorded) and {{.ByName}}.
SELECT
    if(deny_code = '', 'unknown', deny_code) AS reason,
    {{.By}}                                  AS {{.ByName}},
    count()                                  AS denied
FROM {{.Database}}.inference_log FINAL
WHERE timestamp >= toDateTime(@since) AND timestamp < toDateTime(@until) AND allowed = 0
GROUP BY reason, {{.ByName}}
ORDER BY denied DESC, reason, {{.ByName}}
