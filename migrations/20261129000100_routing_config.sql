-- Routing configuration: append-only history, the newest row is the current config.
-- Every change is a new row (who and why recorded) and a NOTIFY to the routers.

CREATE TABLE webhook_routing_config (
    id                bigserial PRIMARY KEY,
    percentage        numeric(5,2) NOT NULL DEFAULT 0,
    enabled           boolean      NOT NULL DEFAULT false,
    domains           text[]       NOT NULL DEFAULT ARRAY['jobs', 'marketplace', 'property'],
    protected_domains text[]       NOT NULL DEFAULT ARRAY['mobility', 'profile', 'insurance'],
    notes             text,
    created_by        text         NOT NULL DEFAULT current_user,
    -- clock_timestamp, not now(): two changes in one transaction must still order.
    created_at        timestamptz  NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT routing_percentage_in_range CHECK (percentage >= 0 AND percentage <= 100),
    CONSTRAINT routing_protected_never_rolled_out CHECK (NOT (domains && protected_domains)),
    CONSTRAINT routing_domains_not_null CHECK (array_position(domains, NULL) IS NULL)
);

CREATE INDEX webhook_routing_config_created_at_idx ON webhook_routing_config (created_at DESC);

-- The history is evidence: refuse edits and deletes.
CREATE FUNCTION webhook_routing_config_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'webhook_routing_config is append-only: insert a new row instead of %', TG_OP
        USING ERRCODE = 'check_violation';
END;
$$;

CREATE TRIGGER webhook_routing_config_no_update_delete
    BEFORE UPDATE OR DELETE ON webhook_routing_config
    FOR EACH ROW EXECUTE FUNCTION webhook_routing_config_append_only();

-- Who made a change: the session's trafficlight.actor when set (CLI, worker), else the DB role.
CREATE FUNCTION webhook_routing_actor() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('trafficlight.actor', true), ''), current_user::text);
$$;

-- The payload carries the whole new config so a router needs no second query.
CREATE FUNCTION webhook_routing_config_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('webhook_routing_config', json_build_object(
        'version', NEW.id,
        'percentage', NEW.percentage,
        'enabled', NEW.enabled,
        'domains', NEW.domains,
        'protected_domains', NEW.protected_domains,
        'notes', NEW.notes,
        'created_by', NEW.created_by,
        'created_at', extract(epoch FROM NEW.created_at)
    )::text);
    RETURN NEW;
END;
$$;

CREATE TRIGGER webhook_routing_config_notify_routers
    AFTER INSERT ON webhook_routing_config
    FOR EACH ROW EXECUTE FUNCTION webhook_routing_config_notify();

INSERT INTO webhook_routing_config (percentage, enabled, notes, created_by)
VALUES (0, false, 'Initial configuration: all traffic to legacy', 'migration');

-- Serialises changes and returns the current row, so concurrent calls never lose one.
CREATE FUNCTION webhook_routing_current_for_change(reason text) RETURNS webhook_routing_config
LANGUAGE plpgsql AS $$
DECLARE
    current_row webhook_routing_config;
BEGIN
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'a reason is required for every routing change'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('webhook_routing_config'));
    SELECT * INTO current_row FROM webhook_routing_config ORDER BY created_at DESC, id DESC LIMIT 1;
    RETURN current_row;
END;
$$;

CREATE FUNCTION update_routing_percentage(pct numeric, reason text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    current_row webhook_routing_config;
BEGIN
    IF pct IS NULL OR pct < 0 OR pct > 100 THEN
        RAISE EXCEPTION 'routing percentage must be between 0 and 100, got %', coalesce(pct::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    current_row := webhook_routing_current_for_change(reason);
    -- A percentage above zero turns routing on: that is how a rollout starts or resumes.
    INSERT INTO webhook_routing_config (percentage, enabled, domains, protected_domains, notes, created_by)
    VALUES (pct, pct > 0, current_row.domains, current_row.protected_domains, reason,
            webhook_routing_actor());
    RAISE NOTICE '%', format('Routing percentage updated to %s%%. Enabled: %s',
                             trim_scale(pct::numeric(5,2)), (pct > 0)::text);
END;
$$;

CREATE FUNCTION set_routing_enabled(enabled boolean, reason text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    current_row webhook_routing_config;
BEGIN
    IF enabled IS NULL THEN
        RAISE EXCEPTION 'enabled must be true or false' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    current_row := webhook_routing_current_for_change(reason);
    INSERT INTO webhook_routing_config (percentage, enabled, domains, protected_domains, notes, created_by)
    VALUES (current_row.percentage, set_routing_enabled.enabled, current_row.domains,
            current_row.protected_domains, reason, webhook_routing_actor());
    RAISE NOTICE 'Routing enabled set to: %', set_routing_enabled.enabled::text;
END;
$$;
