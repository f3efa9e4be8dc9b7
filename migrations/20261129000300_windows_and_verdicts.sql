-- What the workers judged: bucket aggregates and verdicts, upserted idempotently.

CREATE TABLE webhook_routing_windows (
    domain        text        NOT NULL,
    routed_to     text        NOT NULL,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    requests      bigint      NOT NULL,
    errors        bigint      NOT NULL,
    error_pct     numeric     NOT NULL,
    p50_ms        double precision,
    p95_ms        double precision,
    p99_ms        double precision,
    -- The encoded HDR histogram: windows are merged by histogram, never by averaging percentiles.
    histogram     bytea,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, routed_to, window_start),
    CONSTRAINT webhook_routing_windows_routed_to_check CHECK (routed_to IN ('unified', 'legacy'))
);

CREATE INDEX webhook_routing_windows_start_idx ON webhook_routing_windows (window_start);

CREATE TABLE webhook_routing_verdicts (
    domain        text        NOT NULL,
    routed_to     text        NOT NULL,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    requests      bigint      NOT NULL,
    errors        bigint      NOT NULL,
    error_pct     numeric     NOT NULL,
    p50_ms        double precision,
    p95_ms        double precision,
    p99_ms        double precision,
    verdict       text        NOT NULL,
    decision      text        NOT NULL,
    reasons       text[]      NOT NULL DEFAULT '{}',
    evaluated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain, routed_to, window_start),
    CONSTRAINT webhook_routing_verdicts_routed_to_check CHECK (routed_to IN ('unified', 'legacy')),
    CONSTRAINT webhook_routing_verdicts_verdict_check
        CHECK (verdict IN ('healthy', 'warning', 'critical', 'insufficient_data')),
    CONSTRAINT webhook_routing_verdicts_decision_check
        CHECK (decision IN ('proceed', 'hold', 'rollback'))
);

CREATE INDEX webhook_routing_verdicts_latest_idx
    ON webhook_routing_verdicts (domain, routed_to, window_end DESC);

-- One row per rollout domain and target: the latest verdict, or insufficient_data when the
-- workers have judged nothing yet for it.
CREATE FUNCTION check_routing_health()
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
           coalesce(v.requests, 0), coalesce(v.errors, 0), coalesce(v.error_pct, 0),
           v.p50_ms, v.p95_ms, v.p99_ms,
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
