-- One row per routed webhook, written by the worker's sink (COPY, deduplicated by event_id).

CREATE TABLE webhook_routing_logs (
    id               bigserial PRIMARY KEY,
    event_id         text        NOT NULL,
    created_at       timestamptz NOT NULL,
    domain           text        NOT NULL,
    routed_to        text        NOT NULL,
    response_time_ms double precision NOT NULL,
    status           text        NOT NULL,
    http_status      integer,
    error_message    text,
    router_id        text,
    config_version   bigint,
    CONSTRAINT webhook_routing_logs_event_id_key UNIQUE (event_id),
    CONSTRAINT webhook_routing_logs_routed_to_check CHECK (routed_to IN ('unified', 'legacy')),
    CONSTRAINT webhook_routing_logs_status_check CHECK (status IN ('success', 'error')),
    CONSTRAINT webhook_routing_logs_response_time_check CHECK (response_time_ms >= 0)
);

-- The runbook filters on a time range first, then groups by domain and target; the
-- included columns let its summaries run as index-only scans.
CREATE INDEX webhook_routing_logs_time_domain_target_idx
    ON webhook_routing_logs (created_at, domain, routed_to)
    INCLUDE (response_time_ms, status);

CREATE VIEW webhook_routing_stats AS
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
