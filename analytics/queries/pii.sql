-- pii: PII incidents by type and {{.ByName}}: requests that carried the
-- type, and findings of it (0 for rows written before per-type counts).
-- Never PII values: the log holds types and counts only.
SELECT
    pii_type,
    {{.By}}                                              AS {{.ByName}},
    count()                                              AS requests,
    sum(toUInt64(pii_counts[indexOf(pii_types, pii_type)])) AS findings
FROM {{.Database}}.inference_log FINAL
ARRAY JOIN pii_types AS pii_type
WHERE timestamp >= toDateTime(@since) AND timestamp < toDateTime(@until)
GROUP BY pii_type, {{.ByName}}
ORDER BY requests DESC, pii_type, {{.ByName}}
