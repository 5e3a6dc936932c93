-- 0010_roles: least-privilege group roles, one per kind of stage (docs/operations.md,
-- "Database roles"). The roles are NOLOGIN: a stage logs in as a LOGIN user that is a
-- member of its role (CREATE ROLE ingest_app LOGIN PASSWORD '...' IN ROLE evpipe_ingest).
--   evpipe_ingest    evpipe ingest: the traffic tables, the consumer offsets, and the
--                    dirty-hour marks its writes fire (0003's triggers run as the writer)
--   evpipe_stages    evpipe metrics and evpipe funnels: read the traffic, claim the marks,
--                    write metric_snapshots, funnel_results and their state tables
--   evpipe_exporter  evpipe exports and evpipe reports: read what they export or report
--                    on, move exports and reports through their lifecycle, audit it
--   evpipe_readonly  dashboards, evpipe status, evpipe migrate status|verify: SELECT on
--                    every table of the schema
-- audit_logs stays insert-only for everyone: no role gets UPDATE, DELETE or TRUNCATE on
-- it (and the trigger of 0002 refuses them to the owner as well).

-- Roles are cluster-wide: a database migrated before (or concurrently) may have created
-- them already. A role made here carries a comment naming this migration, so that the
-- down migration drops only the roles it created.
DO $$
DECLARE
    r TEXT;
BEGIN
    FOREACH r IN ARRAY ARRAY['evpipe_ingest', 'evpipe_stages', 'evpipe_exporter', 'evpipe_readonly'] LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXECUTE format('COMMENT ON ROLE %I IS %L', r,
                           'evpipe group role (created by migration 0010_roles)');
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- another database's migration created it meanwhile
        END;
    END LOOP;
END;
$$;

-- Connecting, the schema, and temporary tables (ingest's staging tables, the stages'
-- claimed hours): granted here too so that revoking them from PUBLIC keeps the stages
-- working.
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO evpipe_ingest, evpipe_stages, evpipe_exporter, evpipe_readonly',
                   current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO evpipe_ingest, evpipe_stages', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO evpipe_ingest, evpipe_stages, evpipe_exporter, evpipe_readonly',
                   current_schema());
END;
$$;

-- Settings (session timeouts, conversion types, bot exclusion) are read by every stage.
GRANT SELECT ON "tracking_configs" TO evpipe_ingest, evpipe_stages, evpipe_exporter;

-- evpipe ingest. Sessions are upserted and deleted (merges); events, page views and
-- conversions inserted (COPY) and re-pointed to their session; offsets upserted.
GRANT SELECT, INSERT, UPDATE, DELETE ON "analytics_sessions" TO evpipe_ingest;
GRANT SELECT, INSERT, UPDATE ON "analytics_events", "page_views", "conversion_events",
    "consumer_offsets" TO evpipe_ingest;
-- The dirty-hour triggers run with the writer's rights: one mark per downstream stage.
GRANT SELECT ON "downstream_stages" TO evpipe_ingest;
GRANT INSERT ON "dirty_hours" TO evpipe_ingest;
GRANT USAGE ON SEQUENCE "dirty_hours_id_seq" TO evpipe_ingest;

-- evpipe metrics and evpipe funnels.
GRANT SELECT ON "analytics_sessions", "analytics_events", "page_views", "conversion_events",
    "funnels" TO evpipe_stages;
-- appliedSettings is read FOR UPDATE and updated; marks are claimed (FOR UPDATE SKIP
-- LOCKED, then deleted) and inserted by --recompute and by a settings change.
GRANT SELECT, UPDATE ON "downstream_stages" TO evpipe_stages;
GRANT SELECT, INSERT, UPDATE, DELETE ON "dirty_hours" TO evpipe_stages;
GRANT USAGE ON SEQUENCE "dirty_hours_id_seq" TO evpipe_stages;
GRANT SELECT, INSERT, UPDATE, DELETE ON "metric_snapshots", "metric_rollups", "metric_visitors",
    "metric_visitor_counts", "funnel_results", "funnel_entry_days" TO evpipe_stages;
GRANT SELECT, INSERT, UPDATE ON "funnel_stage_state" TO evpipe_stages;
-- A malformed funnel definition is audited.
GRANT INSERT ON "audit_logs" TO evpipe_stages;

-- evpipe exports and evpipe reports: the datasets and report inputs, read only.
GRANT SELECT ON "analytics_sessions", "analytics_events", "page_views", "conversion_events",
    "metric_snapshots", "funnels", "funnel_results" TO evpipe_exporter;
-- Claims (FOR UPDATE SKIP LOCKED), leases, results and final states; every status change
-- inserts its audit row.
GRANT SELECT, UPDATE ON "exports", "reports" TO evpipe_exporter;
GRANT INSERT ON "audit_logs" TO evpipe_exporter;

-- evpipe_readonly: every table of the schema now, and those its migrations create later.
DO $$
BEGIN
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO evpipe_readonly', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO evpipe_readonly',
                   current_schema());
END;
$$;
