-- schema_migrations records which numbered migrations ran against this
-- database. ReplacingMergeTree collapses the duplicate rows left when two
-- gateways migrate at the same moment.
CREATE TABLE IF NOT EXISTS {{.Database}}.schema_migrations
(
    version        UInt32,
    name           String,
    server_version String,
    applied_at     DateTime
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version;
