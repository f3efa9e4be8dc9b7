-- check_routing_health() with figures as people read them: error % to 3 decimals, latencies
-- to 0.1 ms (HDR histogram values carry float noise such as 123.45600000000002). Same name,
-- columns and types as before, so the runbook's queries are unchanged.

CREATE OR REPLACE FUNCTION check_routing_health()
RETURNS TABLE (
    domain       text,
    routed_to    text,
    window_start timestamptz,
    window_end   timestamptz,
    requests     bigint,
    errors       bigint,
    error_pct    numeric,
    p50_ms       double precision,
    p95_ms       double precision,
    p99_ms       double precision,
    verdict      text,
    decision     text,
    reasons      text[],
    evaluated_at timestamptz
)
LANGUAGE sql STABLE AS $$
    WITH current_config AS (
        SELECT domains FROM webhook_routing_config ORDER BY created_at DESC, id DESC LIMIT 1
    ), targets AS (
        SELECT d AS domain, t AS routed_to
        FROM current_config, unnest(current_config.domains) AS d,
             unnest(ARRAY['unified', 'legacy']) AS t
    )
    SELECT targets.domain, targets.routed_to,
           v.window_start, v.window_end,
           coalesce(v.requests, 0), coalesce(v.errors, 0), round(coalesce(v.error_pct, 0), 3),
           round(v.p50_ms::numeric, 1)::float8, round(v.p95_ms::numeric, 1)::float8,
           round(v.p99_ms::numeric, 1)::float8,
           coalesce(v.verdict, 'insufficient_data'),
           coalesce(v.decision, 'hold'),
           coalesce(v.reasons, ARRAY['no verdict yet']),
           v.evaluated_at
    FROM targets
    LEFT JOIN LATERAL (
        SELECT * FROM webhook_routing_verdicts w
        WHERE w.domain = targets.domain AND w.routed_to = targets.routed_to
        ORDER BY w.window_end DESC
        LIMIT 1
    ) v ON true
    ORDER BY targets.domain, targets.routed_to DESC;
$$;

-- The view already rounds (avg_ms, p95_ms to 0.01 ms; error_pct to 0.001 %): restated here
-- so both read the same way; columns and types unchanged.
CREATE OR REPLACE VIEW webhook_routing_stats AS
SELECT
    domain,
    routed_to,
    count(*)                                                              AS requests,
    round(avg(response_time_ms)::numeric, 2)                              AS avg_ms,
    round((percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms))::numeric, 2) AS p95_ms,
    round(100.0 * count(*) FILTER (WHERE status = 'error') / count(*), 3) AS error_pct
FROM webhook_routing_logs
WHERE created_at >= now() - interval '1 hour'
GROUP BY domain, routed_to;
