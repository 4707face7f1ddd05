-- inference_log
CREATE TABLE IF NOT EXISTS tollgate.inference_log
(
    request_id              String,
    timestamp               DateTime('UTC'),
    subject                 String,
    key_id                  String,
    team                    String,
    org                     String,
    kind                    String,
    model_requested         String,
    model_routed            String,
    provider                String,
    status                  UInt16,
    allowed                 UInt8,
    deny_code               String,
    bundle_revision         String,
    pii_types               Array(String),
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
    error                   String,
    path                    String,
    client_ip               String,
    inserted_at             DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toDate(timestamp), team, request_id)
SETTINGS index_granularity = 8192;

-- decision_log
CREATE TABLE IF NOT EXISTS tollgate.decision_log
(
    request_id        String,
    timestamp         DateTime('UTC'),
    subject           String,
    key_id            String,
    team              String,
    org               String,
    kind              String,
    model_requested   String,
    bundle_revision   String,
    allowed           UInt8,
    deny_codes        Array(String),
    route             Array(String),
    fallbacks         Array(String),
    mask_types        Array(String),
    mask_actions      Array(String),
    limits            Array(String),
    store_prompt      UInt8,
    eval_micros       UInt32,
    error             String,
    shadow_revision   String,
    shadow_differs    UInt8,
    shadow_allowed    UInt8,
    shadow_deny_codes Array(String),
    shadow_error      String,
    inserted_at       DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toDate(timestamp), team, request_id)
SETTINGS index_granularity = 8192;

-- inference_log_fields
ALTER TABLE tollgate.inference_log ADD COLUMN user String AFTER subject;

-- inference_log_fields
ALTER TABLE tollgate.inference_log ADD COLUMN agent_chain Array(String) AFTER kind;

-- inference_log_fields
ALTER TABLE tollgate.inference_log ADD COLUMN fallbacks UInt8 AFTER attempts;

-- inference_log_fields
ALTER TABLE tollgate.inference_log ADD COLUMN pii_counts Array(UInt32) AFTER pii_types;

-- inference_log_fields
ALTER TABLE tollgate.inference_log ADD COLUMN tag_keys Array(String) AFTER client_ip;

-- inference_log_fields
ALTER TABLE tollgate.inference_log ADD COLUMN tag_values Array(String) AFTER tag_keys;

-- inference_log_fields
ALTER TABLE tollgate.inference_log ADD COLUMN prompt Nullable(String) AFTER tag_values;

-- inference_log_fields
ALTER TABLE tollgate.inference_log ADD COLUMN response Nullable(String) AFTER prompt;

-- usage_daily
CREATE TABLE IF NOT EXISTS tollgate.usage_daily
(
    day               Date,
    team              String,
    key_id            String,
    model             String,
    provider          String,
    requests          UInt64,
    denied            UInt64,
    prompt_tokens     UInt64,
    completion_tokens UInt64,
    cached_tokens     UInt64,
    cost_micros       Int64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, team, key_id, model, provider);

-- usage_daily
CREATE MATERIALIZED VIEW IF NOT EXISTS tollgate.usage_daily_mv TO tollgate.usage_daily AS
SELECT
    toDate(timestamp)                                        AS day,
    team,
    key_id,
    if(model_routed = '', model_requested, model_routed)     AS model,
    provider,
    count()                                                  AS requests,
    countIf(allowed = 0)                                     AS denied,
    sum(toUInt64(prompt_tokens))                             AS prompt_tokens,
    sum(toUInt64(completion_tokens))                         AS completion_tokens,
    sum(toUInt64(cached_tokens))                             AS cached_tokens,
    sum(cost_micros)                                         AS cost_micros
FROM tollgate.inference_log
GROUP BY day, team, key_id, model, provider;

-- inference_log_attempts
ALTER TABLE tollgate.inference_log ADD COLUMN attempt_targets Array(String) AFTER fallbacks;

-- inference_log_attempts
ALTER TABLE tollgate.inference_log ADD COLUMN attempt_outcomes Array(String) AFTER attempt_targets;

-- inference_log_attempts
ALTER TABLE tollgate.inference_log ADD COLUMN attempt_latency_ms Array(Float64) AFTER attempt_outcomes;

