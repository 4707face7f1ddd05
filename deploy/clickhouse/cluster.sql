-- Tollgate analytics schema for a ClickHouse cluster (current releases):
-- per shard, replicated local tables; on every node, Distributed tables
-- with the names the gateway and the FinOps queries use. It is the
-- clustered form of the migrations in analytics/schema (versions 1-5).
--
-- Apply once, with clickhouse-client --multiquery, from any node. The
-- cluster is named by the {cluster} macro, and each node's config needs
-- the {shard} and {replica} macros and, in remote_servers,
-- <internal_replication>true</internal_replication>. The final INSERT
-- records the migrations as applied, so 'tollgate serve' and
-- 'tollgate migrate' find nothing to do; later migrations must be applied
-- to the *_local tables ON CLUSTER by hand, then recorded.
--
-- Exactness on a cluster:
--   * rows are sharded by cityHash64(request_id): every copy of a request
--     lands on one shard, where ReplacingMergeTree and FINAL collapse it;
--   * Replicated tables deduplicate a repeated identical insert block, so
--     a batch the spool retries after a timeout is stored once and the
--     usage_daily view sees it once. inserted_at is left out here (a
--     DEFAULT now() would make retried blocks differ), and the gateway
--     should insert with insert_distributed_sync = 1 (set it in the
--     default profile of the gateway's user) so the block reaches the
--     shard as sent.

CREATE DATABASE IF NOT EXISTS tollgate ON CLUSTER '{cluster}';

-- schema_migrations is replicated to every node (one path for all shards).
CREATE TABLE IF NOT EXISTS tollgate.schema_migrations ON CLUSTER '{cluster}'
(
    version        UInt32,
    name           String,
    server_version String,
    applied_at     DateTime
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/tollgate/schema_migrations', '{replica}', applied_at)
ORDER BY version;

CREATE TABLE IF NOT EXISTS tollgate.inference_log_local ON CLUSTER '{cluster}'
(
    request_id              String,
    timestamp               DateTime64(3, 'UTC'),
    subject                 String,
    user                    String,
    key_id                  LowCardinality(String),
    team                    LowCardinality(String),
    org                     LowCardinality(String),
    kind                    LowCardinality(String),
    agent_chain             Array(String),
    model_requested         LowCardinality(String),
    model_routed            LowCardinality(String),
    provider                LowCardinality(String),
    status                  UInt16,
    allowed                 UInt8,
    deny_code               LowCardinality(String),
    bundle_revision         LowCardinality(String),
    pii_types               Array(LowCardinality(String)),
    pii_counts              Array(UInt32),
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
    fallbacks               UInt8,
    attempt_targets         Array(String),
    attempt_outcomes        Array(LowCardinality(String)),
    attempt_latency_ms      Array(Float64),
    error                   LowCardinality(String),
    path                    LowCardinality(String),
    client_ip               String,
    tag_keys                Array(LowCardinality(String)),
    tag_values              Array(String),
    prompt                  Nullable(String),
    response                Nullable(String)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tollgate/inference_log', '{replica}')
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toDate(timestamp), team, request_id)
-- TTL toDateTime(timestamp) + INTERVAL 400 DAY
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS tollgate.inference_log ON CLUSTER '{cluster}'
AS tollgate.inference_log_local
ENGINE = Distributed('{cluster}', tollgate, inference_log_local, cityHash64(request_id));

CREATE TABLE IF NOT EXISTS tollgate.decision_log_local ON CLUSTER '{cluster}'
(
    request_id        String,
    timestamp         DateTime64(3, 'UTC'),
    subject           String,
    key_id            LowCardinality(String),
    team              LowCardinality(String),
    org               LowCardinality(String),
    kind              LowCardinality(String),
    model_requested   LowCardinality(String),
    bundle_revision   LowCardinality(String),
    allowed           UInt8,
    deny_codes        Array(LowCardinality(String)),
    route             Array(LowCardinality(String)),
    fallbacks         Array(LowCardinality(String)),
    mask_types        Array(LowCardinality(String)),
    mask_actions      Array(LowCardinality(String)),
    limits            Array(String),
    store_prompt      UInt8,
    eval_micros       UInt32,
    error             LowCardinality(String),
    shadow_revision   LowCardinality(String),
    shadow_differs    UInt8,
    shadow_allowed    UInt8,
    shadow_deny_codes Array(LowCardinality(String)),
    shadow_error      LowCardinality(String)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/tollgate/decision_log', '{replica}')
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toDate(timestamp), team, request_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS tollgate.decision_log ON CLUSTER '{cluster}'
AS tollgate.decision_log_local
ENGINE = Distributed('{cluster}', tollgate, decision_log_local, cityHash64(request_id));

-- Daily roll-up, per shard: the view reads the local inserts of its shard.
CREATE TABLE IF NOT EXISTS tollgate.usage_daily_local ON CLUSTER '{cluster}'
(
    day               Date,
    team              LowCardinality(String),
    key_id            LowCardinality(String),
    model             LowCardinality(String),
    provider          LowCardinality(String),
    requests          UInt64,
    denied            UInt64,
    prompt_tokens     UInt64,
    completion_tokens UInt64,
    cached_tokens     UInt64,
    cost_micros       Int64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/tollgate/usage_daily', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (day, team, key_id, model, provider);

CREATE MATERIALIZED VIEW IF NOT EXISTS tollgate.usage_daily_mv ON CLUSTER '{cluster}'
TO tollgate.usage_daily_local AS
SELECT
    toDate(timestamp)                                    AS day,
    team,
    key_id,
    if(model_routed = '', model_requested, model_routed) AS model,
    provider,
    count()                                              AS requests,
    countIf(allowed = 0)                                 AS denied,
    sum(toUInt64(prompt_tokens))                         AS prompt_tokens,
    sum(toUInt64(completion_tokens))                     AS completion_tokens,
    sum(toUInt64(cached_tokens))                         AS cached_tokens,
    sum(cost_micros)                                     AS cost_micros
FROM tollgate.inference_log_local
GROUP BY day, team, key_id, model, provider;

CREATE TABLE IF NOT EXISTS tollgate.usage_daily ON CLUSTER '{cluster}'
AS tollgate.usage_daily_local
ENGINE = Distributed('{cluster}', tollgate, usage_daily_local, rand());

INSERT INTO tollgate.schema_migrations (version, name, server_version, applied_at) VALUES
    (1, 'inference_log', 'cluster.sql', now()),
    (2, 'decision_log', 'cluster.sql', now()),
    (3, 'inference_log_fields', 'cluster.sql', now()),
    (4, 'usage_daily', 'cluster.sql', now()),
    (5, 'inference_log_attempts', 'cluster.sql', now());
