-- usage_daily rolls inference_log up per day, team, key, model and
-- provider for dashboards: a materialized view adds every inserted block
-- to a SummingMergeTree, whose merges sum rows with the same key. Query it
-- with sum() and GROUP BY, since rows merge only eventually.
--
-- The view sees inserts, not merges: a batch inserted twice (a replay
-- after a crash between insert and commit) counts twice here, while the
-- FinOps queries (analytics/queries), which read inference_log FINAL,
-- count it once. On replicated tables (deploy/clickhouse) insert
-- deduplication drops a repeated identical batch before the view sees it.
-- It covers rows inserted after the migration ran.
CREATE TABLE IF NOT EXISTS {{.Database}}.usage_daily
(
    day               Date,
    team              {{.LowCardString}},
    key_id            {{.LowCardString}},
    model             {{.LowCardString}},
    provider          {{.LowCardString}},
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
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.Database}}.usage_daily_mv TO {{.Database}}.usage_daily AS
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
FROM {{.Database}}.inference_log
GROUP BY day, team, key_id, model, provider;
