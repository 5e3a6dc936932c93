-- 0010_roles (down): revokes what 0010_roles.up.sql granted in this database, in
-- reverse, then drops each group role that the up migration created, unless something
-- still refers to it: grants or objects in another database of the cluster (which
-- migrated 0010 too), or grants made here by someone else. Those roles are kept, with
-- an INFO message that `evpipe migrate` logs. Dropping a role ends the memberships of
-- its login users; the users remain.

DO $$
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE SELECT ON TABLES FROM evpipe_readonly',
                   current_schema());
    EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA %I FROM evpipe_readonly', current_schema());
END;
$$;

REVOKE INSERT ON "audit_logs" FROM evpipe_exporter;
REVOKE SELECT, UPDATE ON "exports", "reports" FROM evpipe_exporter;
REVOKE SELECT ON "analytics_sessions", "analytics_events", "page_views", "conversion_events",
    "metric_snapshots", "funnels", "funnel_results" FROM evpipe_exporter;

REVOKE INSERT ON "audit_logs" FROM evpipe_stages;
REVOKE SELECT, INSERT, UPDATE ON "funnel_stage_state" FROM evpipe_stages;
REVOKE SELECT, INSERT, UPDATE, DELETE ON "metric_snapshots", "metric_rollups", "metric_visitors",
    "metric_visitor_counts", "funnel_results", "funnel_entry_days" FROM evpipe_stages;
REVOKE USAGE ON SEQUENCE "dirty_hours_id_seq" FROM evpipe_stages;
REVOKE SELECT, INSERT, UPDATE, DELETE ON "dirty_hours" FROM evpipe_stages;
REVOKE SELECT, UPDATE ON "downstream_stages" FROM evpipe_stages;
REVOKE SELECT ON "analytics_sessions", "analytics_events", "page_views", "conversion_events",
    "funnels" FROM evpipe_stages;

REVOKE USAGE ON SEQUENCE "dirty_hours_id_seq" FROM evpipe_ingest;
REVOKE INSERT ON "dirty_hours" FROM evpipe_ingest;
REVOKE SELECT ON "downstream_stages" FROM evpipe_ingest;
REVOKE SELECT, INSERT, UPDATE ON "analytics_events", "page_views", "conversion_events",
    "consumer_offsets" FROM evpipe_ingest;
REVOKE SELECT, INSERT, UPDATE, DELETE ON "analytics_sessions" FROM evpipe_ingest;

REVOKE SELECT ON "tracking_configs" FROM evpipe_ingest, evpipe_stages, evpipe_exporter;

DO $$
BEGIN
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM evpipe_ingest, evpipe_stages, evpipe_exporter, evpipe_readonly',
                   current_schema());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM evpipe_ingest, evpipe_stages', current_database());
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM evpipe_ingest, evpipe_stages, evpipe_exporter, evpipe_readonly',
                   current_database());
END;
$$;

-- pg_shdepend holds, cluster-wide, every grant to a role and everything it owns, in any
-- database (and on shared objects such as databases).
DO $$
DECLARE
    r TEXT;
    role_oid OID;
BEGIN
    FOREACH r IN ARRAY ARRAY['evpipe_readonly', 'evpipe_exporter', 'evpipe_stages', 'evpipe_ingest'] LOOP
        SELECT oid INTO role_oid FROM pg_roles WHERE rolname = r;
        CONTINUE WHEN role_oid IS NULL;
        IF shobj_description(role_oid, 'pg_authid') IS DISTINCT FROM
           'evpipe group role (created by migration 0010_roles)' THEN
            RAISE INFO 'role % kept: it was not created by migration 0010_roles', r;
        ELSIF EXISTS (SELECT 1 FROM pg_shdepend
                      WHERE refclassid = 'pg_authid'::regclass AND refobjid = role_oid) THEN
            RAISE INFO 'role % kept: another database (or another grant) still uses it', r;
        ELSE
            EXECUTE format('DROP ROLE %I', r);
        END IF;
    END LOOP;
END;
$$;
