-- Per-domain control. A config row keeps its all-domains percentage and enabled (what the
-- runbook's `SELECT percentage, enabled, domains ... LIMIT 1` reads) and gains
-- domain_overrides: {"jobs": {"percentage": 0, "enabled": false}, ...}, the rollout domains
-- whose setting differs from the all-domains one. A domain without an entry follows the
-- all-domains values. Every change is still one new row (one version, one NOTIFY).
-- The two-argument forms write no overrides: they keep their meaning for every rollout domain.
-- The three-argument forms change one domain's entry; an entry equal to the all-domains values
-- is dropped, so `set_routing_enabled(true, reason, 'jobs')` puts jobs back with the others.

CREATE FUNCTION webhook_routing_overrides_valid(overrides jsonb, domains text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_typeof(overrides) = 'object' AND coalesce(bool_and(
               key = ANY (domains)
               AND jsonb_typeof(value) = 'object'
               AND jsonb_typeof(value -> 'percentage') = 'number'
               AND jsonb_typeof(value -> 'enabled') = 'boolean'
               AND (value ->> 'percentage')::numeric BETWEEN 0 AND 100), true)
    FROM jsonb_each(CASE WHEN jsonb_typeof(overrides) = 'object' THEN overrides
                         ELSE '{}'::jsonb END)
$$;

ALTER TABLE webhook_routing_config
    ADD COLUMN domain_overrides jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD CONSTRAINT routing_domain_overrides_valid
        CHECK (webhook_routing_overrides_valid(domain_overrides, domains));

-- Each rollout domain's setting in force: the newest row, its overrides applied.
CREATE VIEW webhook_routing_domains AS
SELECT c.id AS version,
       d AS domain,
       coalesce((c.domain_overrides -> d ->> 'percentage')::numeric(5,2), c.percentage)
           AS percentage,
       coalesce((c.domain_overrides -> d ->> 'enabled')::boolean, c.enabled) AS enabled,
       c.domain_overrides ? d AS overridden
FROM (SELECT * FROM webhook_routing_config ORDER BY created_at DESC, id DESC LIMIT 1) c,
     unnest(c.domains) AS d;

-- The payload carries the whole new config, overrides included.
CREATE OR REPLACE FUNCTION webhook_routing_config_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('webhook_routing_config', json_build_object(
        'version', NEW.id,
        'percentage', NEW.percentage,
        'enabled', NEW.enabled,
        'domains', NEW.domains,
        'protected_domains', NEW.protected_domains,
        'domain_overrides', NEW.domain_overrides,
        'notes', NEW.notes,
        'created_by', NEW.created_by,
        'created_at', extract(epoch FROM NEW.created_at)
    )::text);
    RETURN NEW;
END;
$$;

-- A rollout domain of `current_row`, or a clear refusal naming why not.
CREATE FUNCTION webhook_routing_check_domain(current_row webhook_routing_config, name text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF name IS NULL OR btrim(name) = '' THEN
        RAISE EXCEPTION 'a domain is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF lower(name) = ANY (webhook_routing_lower_all(current_row.protected_domains))
            OR lower(name) = ANY (webhook_routing_builtin_protected()) THEN
        RAISE EXCEPTION 'domain % is protected: it always goes to legacy', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT name = ANY (current_row.domains) THEN
        RAISE EXCEPTION 'unknown domain % (rollout domains: %)', name,
            array_to_string(current_row.domains, ', ')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN name;
END;
$$;

-- Overrides with `name` set to (pct, on); dropped when equal to the all-domains values.
CREATE FUNCTION webhook_routing_with_override(current_row webhook_routing_config, name text,
                                              pct numeric, is_enabled boolean) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN pct = current_row.percentage AND is_enabled = current_row.enabled
            THEN current_row.domain_overrides - name
        ELSE current_row.domain_overrides
             || jsonb_build_object(name, jsonb_build_object('percentage', pct::numeric(5,2),
                                                            'enabled', is_enabled))
    END
$$;

CREATE FUNCTION update_routing_percentage(pct numeric, reason text, domain text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    current_row webhook_routing_config;
    name text;
BEGIN
    IF pct IS NULL OR pct < 0 OR pct > 100 THEN
        RAISE EXCEPTION 'routing percentage must be between 0 and 100, got %', coalesce(pct::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    current_row := webhook_routing_current_for_change(reason);
    name := webhook_routing_check_domain(current_row, update_routing_percentage.domain);
    INSERT INTO webhook_routing_config (percentage, enabled, domains, protected_domains,
                                        domain_overrides, notes, created_by)
    VALUES (current_row.percentage, current_row.enabled, current_row.domains,
            current_row.protected_domains,
            webhook_routing_with_override(current_row, name, pct, pct > 0),
            reason, webhook_routing_actor());
    RAISE NOTICE '%', format('Routing percentage for %s updated to %s%%. Enabled: %s', name,
                             trim_scale(pct::numeric(5,2)), (pct > 0)::text);
END;
$$;

CREATE FUNCTION set_routing_enabled(enabled boolean, reason text, domain text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    current_row webhook_routing_config;
    name text;
    pct numeric;
BEGIN
    IF set_routing_enabled.enabled IS NULL THEN
        RAISE EXCEPTION 'enabled must be true or false' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    current_row := webhook_routing_current_for_change(reason);
    name := webhook_routing_check_domain(current_row, set_routing_enabled.domain);
    pct := coalesce((current_row.domain_overrides -> name ->> 'percentage')::numeric,
                    current_row.percentage);
    INSERT INTO webhook_routing_config (percentage, enabled, domains, protected_domains,
                                        domain_overrides, notes, created_by)
    VALUES (current_row.percentage, current_row.enabled, current_row.domains,
            current_row.protected_domains,
            webhook_routing_with_override(current_row, name, pct, set_routing_enabled.enabled),
            reason, webhook_routing_actor());
    RAISE NOTICE 'Routing enabled for % set to: %', name, set_routing_enabled.enabled::text;
END;
$$;

-- The share of `name`'s traffic a config version sent to unified (0 when off or not rolled
-- out): what events stamped with that config_version should show, e.g. for a sample-ratio check.
CREATE FUNCTION webhook_routing_domain_percentage(version bigint, name text) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN NOT name = ANY (c.domains) THEN 0
        WHEN coalesce((c.domain_overrides -> name ->> 'enabled')::boolean, c.enabled)
            THEN coalesce((c.domain_overrides -> name ->> 'percentage')::numeric(5,2),
                          c.percentage)
        ELSE 0
    END
    FROM webhook_routing_config c WHERE c.id = version
$$;
