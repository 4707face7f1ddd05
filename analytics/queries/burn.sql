-- burn: budget burn rate and month-end forecast per {{.ByName}}, for the
-- calendar month (UTC) of @now. The burn rate is the month-to-date spend
-- over the days elapsed, today included; the forecast adds that rate for
-- the remaining days. With @budget_micros > 0, forecast_budget_pct is the
-- forecast as a share of that budget. Integer micro-dollars throughout.
SELECT
    {{.By}}                                                            AS {{.ByName}},
    sum(cost_micros)                                                   AS month_to_date_micros,
    toUInt32(toDayOfMonth(toDateTime(@now, 'UTC')))                           AS days_elapsed,
    toUInt32(toDayOfMonth(addDays(addMonths(toStartOfMonth(toDateTime(@now, 'UTC')), 1), -1))) AS days_in_month,
    intDiv(month_to_date_micros, days_elapsed)                         AS burn_micros_per_day,
    month_to_date_micros + burn_micros_per_day * (days_in_month - days_elapsed) AS forecast_micros,
    forecast_micros / 1000000                                          AS forecast_usd,
    if(@budget_micros > 0, round(100 * forecast_micros / @budget_micros, 1), 0) AS forecast_budget_pct
FROM {{.Database}}.inference_log FINAL
WHERE timestamp >= toDateTime(toStartOfMonth(toDateTime(@now, 'UTC')), 'UTC') AND timestamp < toDateTime(@now)
GROUP BY {{.ByName}}
ORDER BY forecast_micros DESC, {{.ByName}}
