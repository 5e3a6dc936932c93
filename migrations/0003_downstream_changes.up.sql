-- 0003_downstream_changes: complete change propagation to the downstream stages.
-- Every change to the stored rows (insert, update, delete: ingest's new events, session
-- merges, re-splits and deletions, re-pointed events, reclassified sessions, a manual
-- fix) marks the UTC hours it touches as dirty for each downstream stage, in the
-- same transaction as the change itself: a crash at any instant can lose neither the
-- change nor its mark. The stages claim marks (FOR UPDATE SKIP LOCKED), recompute the
-- periods that contain those hours and delete the marks in the transaction that
-- writes the new results. See docs/downstream-changes.md.

-- The stages that consume the marks; each gets its own copy of every mark.
CREATE TABLE "downstream_stages" (
    "name" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),

    CONSTRAINT "downstream_stages_pkey" PRIMARY KEY ("name")
);
INSERT INTO "downstream_stages" ("name") VALUES ('metrics'), ('funnels');

-- Append-only queue of dirty hours per stage. No unique key on purpose: a writer never
-- waits for a stage that holds a mark of the same hour; the stage folds duplicates.
CREATE TABLE "dirty_hours" (
    "id" BIGSERIAL NOT NULL,
    "stage" TEXT NOT NULL,
    "entity" TEXT NOT NULL,
    "hourStart" TIMESTAMPTZ(3) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),

    CONSTRAINT "dirty_hours_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "dirty_hours_stage_id_idx" ON "dirty_hours"("stage", "id");

-- Marks the UTC hours of the rows a statement changed, old and new, once per stage:
-- every hour from the row's TG_ARGV[0] column to its TG_ARGV[1] column (the same
-- column for a row that is one point in time). analytics_sessions spans startedAt to
-- endedAt: a session counts in its start hour, and its events' numbers depend on its
-- device type (BOT sessions are left out), so a merged, re-split, deleted, moved or
-- reclassified session dirties all its hours. Statement triggers with transition
-- tables: one INSERT per statement (COPY included), whatever its row count.
CREATE FUNCTION "evpipe_mark_dirty_hours"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    rows_name TEXT;
BEGIN
    FOREACH rows_name IN ARRAY CASE TG_OP WHEN 'INSERT' THEN ARRAY['new_rows']
                                          WHEN 'DELETE' THEN ARRAY['old_rows']
                                          ELSE ARRAY['old_rows', 'new_rows'] END LOOP
        EXECUTE format(
            'INSERT INTO "dirty_hours" ("stage", "entity", "hourStart")
             SELECT st."name", %L, h."hour"
             FROM "downstream_stages" st,
                  (SELECT DISTINCT g."hour"
                   FROM %I r,
                        generate_series(date_trunc(''hour'', r.%I, ''UTC''),
                                        GREATEST(r.%I, COALESCE(r.%I, r.%I)),
                                        interval ''1 hour'') AS g("hour")) h',
            TG_TABLE_NAME, rows_name, TG_ARGV[0], TG_ARGV[0], TG_ARGV[1], TG_ARGV[0]);
    END LOOP;
    RETURN NULL;
END;
$$;

-- A trigger with transition tables takes one event, so three per table.
CREATE TRIGGER "analytics_sessions_dirty_insert" AFTER INSERT ON "analytics_sessions"
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('startedAt', 'endedAt');
CREATE TRIGGER "analytics_sessions_dirty_update" AFTER UPDATE ON "analytics_sessions"
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('startedAt', 'endedAt');
CREATE TRIGGER "analytics_sessions_dirty_delete" AFTER DELETE ON "analytics_sessions"
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('startedAt', 'endedAt');

CREATE TRIGGER "analytics_events_dirty_insert" AFTER INSERT ON "analytics_events"
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('occurredAt', 'occurredAt');
CREATE TRIGGER "analytics_events_dirty_update" AFTER UPDATE ON "analytics_events"
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('occurredAt', 'occurredAt');
CREATE TRIGGER "analytics_events_dirty_delete" AFTER DELETE ON "analytics_events"
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('occurredAt', 'occurredAt');

CREATE TRIGGER "conversion_events_dirty_insert" AFTER INSERT ON "conversion_events"
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('occurredAt', 'occurredAt');
CREATE TRIGGER "conversion_events_dirty_update" AFTER UPDATE ON "conversion_events"
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('occurredAt', 'occurredAt');
CREATE TRIGGER "conversion_events_dirty_delete" AFTER DELETE ON "conversion_events"
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('occurredAt', 'occurredAt');

CREATE TRIGGER "page_views_dirty_insert" AFTER INSERT ON "page_views"
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('viewedAt', 'viewedAt');
CREATE TRIGGER "page_views_dirty_update" AFTER UPDATE ON "page_views"
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('viewedAt', 'viewedAt');
CREATE TRIGGER "page_views_dirty_delete" AFTER DELETE ON "page_views"
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_mark_dirty_hours"('viewedAt', 'viewedAt');
