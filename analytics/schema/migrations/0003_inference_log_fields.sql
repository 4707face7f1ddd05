-- Adds to inference_log the identity, routing, PII, tag and stored-prompt
-- fields of analytics.Event that 0001 lacked. Rows written before read
-- the defaults: '' , 0, [] and NULL.
--
-- One column per statement: servers before 19.x have no ADD COLUMN IF NOT
-- EXISTS, so Migrate treats "column already exists" on an ADD COLUMN as
-- done, which keeps a migration interrupted halfway re-runnable.
--
-- user: the end user behind the call; agent_chain: on-behalf-of subjects.
ALTER TABLE {{.Database}}.inference_log ADD COLUMN user String AFTER subject;
ALTER TABLE {{.Database}}.inference_log ADD COLUMN agent_chain Array(String) AFTER kind;
-- fallbacks: attempts that went to a fallback target.
ALTER TABLE {{.Database}}.inference_log ADD COLUMN fallbacks UInt8 AFTER attempts;
-- pii_counts is parallel to pii_types; never PII values.
ALTER TABLE {{.Database}}.inference_log ADD COLUMN pii_counts Array(UInt32) AFTER pii_types;
-- Tags as parallel key/value arrays: tag_values[indexOf(tag_keys, 'project')].
ALTER TABLE {{.Database}}.inference_log ADD COLUMN tag_keys Array({{.LowCardString}}) AFTER client_ip;
ALTER TABLE {{.Database}}.inference_log ADD COLUMN tag_values Array(String) AFTER tag_keys;
-- Masked prompt and response, only when the decision said store_prompt.
ALTER TABLE {{.Database}}.inference_log ADD COLUMN prompt Nullable(String) AFTER tag_values;
ALTER TABLE {{.Database}}.inference_log ADD COLUMN response Nullable(String) AFTER prompt;
