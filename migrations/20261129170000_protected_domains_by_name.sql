-- Protected domains are protected by name, whatever a config row says: no row may roll one out
-- (in any letter case) or leave one out of protected_domains, so a direct INSERT cannot route
-- mobility, profile or insurance to unified. The router checks the same list in code.
-- Domain names are plain names, as the router's URL path accepts them: nothing else can be
-- routed, so nothing else belongs in a config row.

CREATE FUNCTION webhook_routing_builtin_protected() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY['mobility', 'profile', 'insurance'] $$;

CREATE FUNCTION webhook_routing_lower_all(names text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(lower(name)), ARRAY[]::text[]) FROM unnest(names) AS name
$$;

CREATE FUNCTION webhook_routing_plain_names(names text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(bool_and(name ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'), true)
    FROM unnest(names) AS name
$$;

ALTER TABLE webhook_routing_config
    ADD CONSTRAINT routing_builtin_protected_kept
        CHECK (protected_domains @> webhook_routing_builtin_protected()),
    ADD CONSTRAINT routing_protected_never_rolled_out_any_case
        CHECK (NOT (webhook_routing_lower_all(domains)
                    && webhook_routing_lower_all(protected_domains))),
    ADD CONSTRAINT routing_domains_are_plain_names
        CHECK (webhook_routing_plain_names(domains)
               AND webhook_routing_plain_names(protected_domains));
