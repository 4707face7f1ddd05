-- Adds to inference_log every upstream attempt of a request, as parallel
-- arrays in call order: attempt_targets[i] ("provider/model") ended with
-- attempt_outcomes[i] after attempt_latency_ms[i]. Rows written before read
-- empty arrays. One column per statement (see 0003).
ALTER TABLE {{.Database}}.inference_log ADD COLUMN attempt_targets Array(String) AFTER fallbacks;
ALTER TABLE {{.Database}}.inference_log ADD COLUMN attempt_outcomes Array({{.LowCardString}}) AFTER attempt_targets;
ALTER TABLE {{.Database}}.inference_log ADD COLUMN attempt_latency_ms Array(Float64) AFTER attempt_outcomes;
