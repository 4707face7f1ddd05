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

