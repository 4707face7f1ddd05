-- decision_log holds one row per policy decision (analytics.DecisionEvent),
-- for audit. It never holds prompts or PII values.
--
-- Keyed like inference_log: ReplacingMergeTree collapses rows with the same
-- sort key, so a decision replayed from the spool does not count twice once
-- parts merge; query with FINAL (or argMax/uniqExact) to be exact before
-- that. mask_types and mask_actions are parallel arrays (type i gets action
-- i); route and fallbacks hold "provider/model:weight", limits
-- "scope|window|tokens|requests|usd_micros".
--
-- Types adapt to the server: {{.LowCardString}} for low-cardinality columns,
-- {{.DateTime}} for the timestamp{{if .TTLDays}}, rows expire after {{.TTLDays}} days{{end}}.
CREATE TABLE IF NOT EXISTS {{.Database}}.decision_log
(
    request_id        String,
    timestamp         {{.DateTime}},
    subject           String,
    key_id            {{.LowCardString}},
    team              {{.LowCardString}},
    org               {{.LowCardString}},
    kind              {{.LowCardString}},
    model_requested   {{.LowCardString}},
    bundle_revision   {{.LowCardString}},
    allowed           UInt8,
    deny_codes        Array({{.LowCardString}}),
    route             Array({{.LowCardString}}),
    fallbacks         Array({{.LowCardString}}),
    mask_types        Array({{.LowCardString}}),
    mask_actions      Array({{.LowCardString}}),
    limits            Array(String),
    store_prompt      UInt8,
    eval_micros       UInt32,
    error             {{.LowCardString}},
    shadow_revision   {{.LowCardString}},
    shadow_differs    UInt8,
    shadow_allowed    UInt8,
    shadow_deny_codes Array({{.LowCardString}}),
    shadow_error      {{.LowCardString}},
    inserted_at       DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toDate(timestamp), team, request_id)
{{- if .TTLDays}}
TTL toDateTime(timestamp) + INTERVAL {{.TTLDays}} DAY
{{- end}}
SETTINGS index_granularity = 8192;
