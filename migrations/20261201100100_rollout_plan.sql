-- The rollout plan as data: append-only like the config, the newest row is the plan in force.
-- Each change (set, promote, pause, resume, abort) is a new row with who and why, announced by
-- NOTIFY on webhook_rollout_plan. Plan changes take the config's advisory lock: a promotion
-- and the config row it writes are one step, serialised with every other routing change.
--
-- Promotion moves the all-domains percentage to the next step and keeps per-domain overrides:
-- a domain taken back on its own stays back until an operator re-enables it.
-- Workers call promote_rollout_plan(reason, expected_version): it promotes only when the plan
-- is still the version they judged, so several workers never promote twice.

CREATE TABLE webhook_rollout_plan (
    id               bigserial PRIMARY KEY,
    steps            numeric(5,2)[] NOT NULL,
    bake             interval       NOT NULL,
    -- Proceed verdicts in a row per rollout domain (stored unified rows, one per 10 s bucket)
    -- needed before a promotion.
    required_proceed integer        NOT NULL DEFAULT 30,
    state            text           NOT NULL,
    current_step     integer        NOT NULL,    -- 1-based index into steps
    step_started_at  timestamptz    NOT NULL,
    action           text           NOT NULL,
    notes            text,
    created_by       text           NOT NULL DEFAULT current_user,
    created_at       timestamptz    NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT rollout_plan_state_check CHECK (state IN ('running', 'paused', 'aborted', 'done')),
    CONSTRAINT rollout_plan_action_check
        CHECK (action IN ('set', 'promote', 'pause', 'resume', 'abort')),
    CONSTRAINT rollout_plan_steps_present CHECK (cardinality(steps) >= 1),
    CONSTRAINT rollout_plan_step_in_range CHECK (current_step BETWEEN 1 AND cardinality(steps)),
    CONSTRAINT rollout_plan_bake_not_negative CHECK (bake >= interval '0'),
    CONSTRAINT rollout_plan_required_proceed_positive CHECK (required_proceed >= 1)
);

CREATE INDEX webhook_rollout_plan_created_at_idx ON webhook_rollout_plan (created_at DESC);

CREATE FUNCTION webhook_rollout_plan_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'webhook_rollout_plan is append-only: insert a new row instead of %', TG_OP
        USING ERRCODE = 'check_violation';
END;
$$;

CREATE TRIGGER webhook_rollout_plan_no_update_delete
    BEFORE UPDATE OR DELETE ON webhook_rollout_plan
    FOR EACH ROW EXECUTE FUNCTION webhook_rollout_plan_append_only();

CREATE FUNCTION webhook_rollout_plan_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('webhook_rollout_plan', json_build_object(
        'version', NEW.id,
        'steps', NEW.steps,
        'bake_s', extract(epoch FROM NEW.bake),
        'required_proceed', NEW.required_proceed,
        'state', NEW.state,
        'current_step', NEW.current_step,
        'step_pct', NEW.steps[NEW.current_step],
        'step_started_at', extract(epoch FROM NEW.step_started_at),
        'action', NEW.action,
        'notes', NEW.notes,
        'created_by', NEW.created_by,
        'created_at', extract(epoch FROM NEW.created_at)
    )::text);
    RETURN NEW;
END;
$$;

CREATE TRIGGER webhook_rollout_plan_notify_listeners
    AFTER INSERT ON webhook_rollout_plan
    FOR EACH ROW EXECUTE FUNCTION webhook_rollout_plan_notify();

CREATE VIEW webhook_rollout_plan_current AS
SELECT * FROM webhook_rollout_plan ORDER BY created_at DESC, id DESC LIMIT 1;

-- Takes the routing lock (checking the reason) and returns the plan in force, or NULL.
CREATE FUNCTION webhook_rollout_plan_for_change(reason text) RETURNS webhook_rollout_plan
LANGUAGE plpgsql AS $$
DECLARE
    plan webhook_rollout_plan;
BEGIN
    PERFORM webhook_routing_current_for_change(reason);
    SELECT * INTO plan FROM webhook_rollout_plan ORDER BY created_at DESC, id DESC LIMIT 1;
    RETURN plan;
END;
$$;

-- Moves the all-domains percentage to `pct`, routing on, per-domain overrides kept.
CREATE FUNCTION webhook_rollout_apply_step(pct numeric, reason text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    current_row webhook_routing_config;
BEGIN
    current_row := webhook_routing_current_for_change(reason);
    INSERT INTO webhook_routing_config (percentage, enabled, domains, protected_domains,
                                        domain_overrides, notes, created_by)
    VALUES (pct, true, current_row.domains, current_row.protected_domains,
            current_row.domain_overrides, reason, webhook_routing_actor());
END;
$$;

CREATE FUNCTION webhook_rollout_plan_next(plan webhook_rollout_plan, next_state text,
                                          next_step integer, restart_step boolean,
                                          next_action text, reason text)
RETURNS webhook_rollout_plan
LANGUAGE plpgsql AS $$
DECLARE
    inserted webhook_rollout_plan;
BEGIN
    INSERT INTO webhook_rollout_plan (steps, bake, required_proceed, state, current_step,
                                      step_started_at, action, notes, created_by)
    VALUES (plan.steps, plan.bake, plan.required_proceed, next_state, next_step,
            CASE WHEN restart_step THEN clock_timestamp() ELSE plan.step_started_at END,
            next_action, reason, webhook_routing_actor())
    RETURNING * INTO inserted;
    RETURN inserted;
END;
$$;

CREATE FUNCTION set_rollout_plan(steps numeric[], bake interval, reason text,
                                 required_proceed integer DEFAULT 30)
RETURNS webhook_rollout_plan
LANGUAGE plpgsql AS $$
DECLARE
    inserted webhook_rollout_plan;
    i integer;
BEGIN
    IF steps IS NULL OR cardinality(steps) = 0 THEN
        RAISE EXCEPTION 'a rollout plan needs at least one step' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    steps := steps::numeric(5,2)[];  -- as stored: 10.001 and 10.004 are both 10.00
    FOR i IN 1 .. cardinality(steps) LOOP
        IF steps[i] IS NULL OR steps[i] <= 0 OR steps[i] > 100 THEN
            RAISE EXCEPTION 'rollout plan steps must be within (0, 100], got %',
                coalesce(steps[i]::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF i > 1 AND steps[i] <= steps[i - 1] THEN
            RAISE EXCEPTION 'rollout plan steps must rise: % after %', trim_scale(steps[i]),
                trim_scale(steps[i - 1])
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF bake IS NULL OR bake < interval '0' THEN
        RAISE EXCEPTION 'bake must be a duration of zero or more, got %', coalesce(bake::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF required_proceed IS NULL OR required_proceed < 1 THEN
        RAISE EXCEPTION 'required_proceed must be at least 1, got %',
            coalesce(required_proceed::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM webhook_rollout_plan_for_change(reason);
    INSERT INTO webhook_rollout_plan (steps, bake, required_proceed, state, current_step,
                                      step_started_at, action, notes, created_by)
    VALUES (steps, bake, required_proceed,
            CASE WHEN cardinality(steps) = 1 THEN 'done' ELSE 'running' END, 1,
            clock_timestamp(), 'set', reason, webhook_routing_actor())
    RETURNING * INTO inserted;
    PERFORM webhook_rollout_apply_step(steps[1], format('rollout plan set (step 1 of %s: %s%%): %s',
        cardinality(steps), trim_scale(steps[1]::numeric(5,2)), reason));
    RAISE NOTICE '%', format('Rollout plan set: %s%%, bake %s. Step 1: %s%%',
        (SELECT string_agg(trim_scale(s)::text, '%, ') FROM unnest(inserted.steps) AS s),
        bake, trim_scale(steps[1]::numeric(5,2)));
    RETURN inserted;
END;
$$;

-- The next step. With expected_version (workers): only if the plan in force is still that
-- version and running, else false and nothing happens. Without (operators): refuses with the
-- reason when there is nothing to promote.
CREATE FUNCTION promote_rollout_plan(reason text, expected_version bigint DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    plan webhook_rollout_plan;
    promoted webhook_rollout_plan;
    next_step integer;
BEGIN
    plan := webhook_rollout_plan_for_change(reason);
    IF expected_version IS NOT NULL
            AND (plan.id IS DISTINCT FROM expected_version OR plan.state <> 'running') THEN
        RETURN false;
    END IF;
    IF plan.id IS NULL THEN
        RAISE EXCEPTION 'no rollout plan: set one first' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF plan.state <> 'running' THEN
        RAISE EXCEPTION 'the rollout plan is %: only a running plan can be promoted', plan.state
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    next_step := plan.current_step + 1;
    promoted := webhook_rollout_plan_next(
        plan, CASE WHEN next_step = cardinality(plan.steps) THEN 'done' ELSE 'running' END,
        next_step, true, 'promote', reason);
    PERFORM webhook_rollout_apply_step(plan.steps[next_step], format(
        'rollout plan: step %s of %s, %s%%: %s', next_step, cardinality(plan.steps),
        trim_scale(plan.steps[next_step]::numeric(5,2)), reason));
    RAISE NOTICE '%', format('Rollout plan promoted to step %s of %s: %s%%', next_step,
        cardinality(plan.steps), trim_scale(plan.steps[next_step]::numeric(5,2)));
    RETURN true;
END;
$$;

CREATE FUNCTION pause_rollout_plan(reason text) RETURNS webhook_rollout_plan
LANGUAGE plpgsql AS $$
DECLARE
    plan webhook_rollout_plan;
BEGIN
    plan := webhook_rollout_plan_for_change(reason);
    IF plan.id IS NULL OR plan.state <> 'running' THEN
        RAISE EXCEPTION 'the rollout plan is %: only a running plan can be paused',
            coalesce(plan.state, 'not set') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RAISE NOTICE 'Rollout plan paused at step % of %', plan.current_step, cardinality(plan.steps);
    RETURN webhook_rollout_plan_next(plan, 'paused', plan.current_step, false, 'pause', reason);
END;
$$;

-- Resuming restarts the step's bake: evidence counts from the resume on.
CREATE FUNCTION resume_rollout_plan(reason text) RETURNS webhook_rollout_plan
LANGUAGE plpgsql AS $$
DECLARE
    plan webhook_rollout_plan;
BEGIN
    plan := webhook_rollout_plan_for_change(reason);
    IF plan.id IS NULL OR plan.state <> 'paused' THEN
        RAISE EXCEPTION 'the rollout plan is %: only a paused plan can be resumed',
            coalesce(plan.state, 'not set') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RAISE NOTICE 'Rollout plan resumed at step % of %', plan.current_step, cardinality(plan.steps);
    RETURN webhook_rollout_plan_next(plan, 'running', plan.current_step, true, 'resume', reason);
END;
$$;

-- Aborting sends every domain back to legacy (routing disabled) and ends the plan.
CREATE FUNCTION abort_rollout_plan(reason text) RETURNS webhook_rollout_plan
LANGUAGE plpgsql AS $$
DECLARE
    plan webhook_rollout_plan;
    aborted webhook_rollout_plan;
BEGIN
    plan := webhook_rollout_plan_for_change(reason);
    IF plan.id IS NULL OR plan.state NOT IN ('running', 'paused') THEN
        RAISE EXCEPTION 'the rollout plan is %: only a running or paused plan can be aborted',
            coalesce(plan.state, 'not set') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    aborted := webhook_rollout_plan_next(plan, 'aborted', plan.current_step, false, 'abort', reason);
    PERFORM set_routing_enabled(false, format('rollout plan aborted: %s', reason));
    RAISE NOTICE 'Rollout plan aborted at step % of %', plan.current_step, cardinality(plan.steps);
    RETURN aborted;
END;
$$;
