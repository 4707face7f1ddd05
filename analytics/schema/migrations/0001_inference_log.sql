-- inference_log holds one row per gateway request (analytics.Event).
--
-- ReplacingMergeTree collapses rows with the same sort key, so an event
-- replayed from the spool does not count twice once parts merge; query with
-- FINAL (or argMax/uniqExact) to be exact before that.
--
-- Types adapt to the server: {{.LowCardString}} for low-cardinality columns,
-- {{.DateTime}} for the timestamp{{if .TTLDays}}, rows expire after {{.TTLDays}} days{{end}}.
CREATE TABLE IF NOT EXISTS {{.Database}}.inference_log
(
    request_id              String,
    timestamp               {{.DateTime}},
    subject                 String,
    key_id                  {{.LowCardString}},
    team                    {{.LowCardString}},
    org                     {{.LowCardString}},
    kind                    {{.LowCardString}},
    model_requested         {{.LowCardString}},
    model_routed            {{.LowCardString}},
    provider                {{.LowCardString}},
    status                  UInt16,
    allowed                 UInt8,
    deny_code               {{.LowCardString}},
    bundle_revision         {{.LowCardString}},
    pii_types               Array({{.LowCardString}}),
    pii_count               UInt32,
    prompt_tokens_estimated UInt32,
    prompt_tokens           UInt32,
    completion_tokens       UInt32,
    cached_tokens           UInt32,
    cost_micros             Int64,
    cost_usd                Float64,
    latency_ms              Float64,
    ttft_ms                 Float64,
    stream                  UInt8,
    cut_off                 UInt8,
    attempts                UInt8,
    error                   {{.LowCardString}},
    path                    {{.LowCardString}},
    client_ip               String,
    inserted_at             DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toDate(timestamp), team, request_id)
{{- if .TTLDays}}
TTL toDateTime(timestamp) + INTERVAL {{.TTLDays}} DAY
{{- end}}
SETTINGS index_granularity = 8192;
