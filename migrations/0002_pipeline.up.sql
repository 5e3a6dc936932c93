-- 0002_pipeline: what the pipeline needs beyond the seed: why a session started, the
-- event fields the sessionizer rebuilds its state from, idempotency keys, the Kafka
-- offsets stored with the rows, append-only audit logs, one funnel result per period,
-- and notifications that wake the exports stage and reload settings.

-- Sessions record why they started (SPEC §4), so a surprising split can be explained.
CREATE TYPE "SessionStartReason" AS ENUM ('FIRST', 'INACTIVITY', 'MAX_DURATION', 'CAMPAIGN', 'MIDNIGHT');

ALTER TABLE "analytics_sessions" ADD COLUMN "startReason" "SessionStartReason" NOT NULL DEFAULT 'FIRST';

-- Per-event fields the sessionizer needs to rebuild a session from PostgreSQL.
ALTER TABLE "analytics_events"
    ADD COLUMN "referrer" TEXT,
    ADD COLUMN "pageViewId" TEXT,
    ADD COLUMN "timeOnPage" DOUBLE PRECISION,
    ADD COLUMN "scrollDepth" INTEGER;

-- The producer's eventId is the idempotency key: the same event is stored once.
CREATE UNIQUE INDEX "analytics_events_eventId_key" ON "analytics_events"("eventId");
CREATE UNIQUE INDEX "page_views_eventId_key" ON "page_views"("eventId");
CREATE UNIQUE INDEX "conversion_events_eventId_key" ON "conversion_events"("eventId");

-- Session state reload (a visitor's recent sessions and their events) and re-pointing
-- the rows of merged sessions.
CREATE INDEX "analytics_sessions_visitorId_endedAt_idx" ON "analytics_sessions"("visitorId", "endedAt");
CREATE INDEX "analytics_events_sessionId_idx" ON "analytics_events"("sessionId");
CREATE INDEX "analytics_events_visitorId_occurredAt_idx" ON "analytics_events"("visitorId", "occurredAt");
CREATE INDEX "page_views_sessionId_idx" ON "page_views"("sessionId");
CREATE INDEX "conversion_events_sessionId_idx" ON "conversion_events"("sessionId");

-- Next Kafka offset per consumer group and partition, written in the same transaction
-- as the rows they produced (exactly-once effect).
CREATE TABLE "consumer_offsets" (
    "consumerGroup" TEXT NOT NULL,
    "topic" TEXT NOT NULL,
    "partition" INTEGER NOT NULL,
    "nextOffset" BIGINT NOT NULL,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),

    CONSTRAINT "consumer_offsets_pkey" PRIMARY KEY ("consumerGroup", "topic", "partition")
);

-- audit_logs is append-only: the database itself refuses UPDATE, DELETE and TRUNCATE.
CREATE FUNCTION "evpipe_audit_logs_append_only"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only'
        USING ERRCODE = 'P0001',
              DETAIL = format('%s on audit_logs is refused.', TG_OP),
              HINT = 'Record a correction as a new audit log entry.';
END;
$$;

CREATE TRIGGER "audit_logs_append_only_row"
    BEFORE UPDATE OR DELETE ON "audit_logs"
    FOR EACH ROW EXECUTE FUNCTION "evpipe_audit_logs_append_only"();

CREATE TRIGGER "audit_logs_append_only_truncate"
    BEFORE TRUNCATE ON "audit_logs"
    FOR EACH STATEMENT EXECUTE FUNCTION "evpipe_audit_logs_append_only"();

-- Recomputing a funnel's period replaces its one result row.
ALTER TABLE "funnel_results" ADD CONSTRAINT "funnel_results_funnelId_period_periodStart_periodEnd_key" UNIQUE ("funnelId", "period", "periodStart", "periodEnd");

-- An export that becomes PENDING (inserted, or set back to PENDING) wakes the exports
-- stage: LISTEN evpipe_exports, payload = the export's id.
CREATE FUNCTION "evpipe_exports_notify"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('evpipe_exports', NEW."id"::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER "exports_notify_insert"
    AFTER INSERT ON "exports"
    FOR EACH ROW WHEN (NEW."status" = 'PENDING')
    EXECUTE FUNCTION "evpipe_exports_notify"();

CREATE TRIGGER "exports_notify_pending"
    AFTER UPDATE OF "status" ON "exports"
    FOR EACH ROW WHEN (NEW."status" = 'PENDING' AND OLD."status" IS DISTINCT FROM NEW."status")
    EXECUTE FUNCTION "evpipe_exports_notify"();

-- Any change to a setting is announced so running stages reload it without a restart:
-- LISTEN evpipe_tracking_configs, payload = the setting's key (old and new key when
-- an UPDATE renames it).
CREATE FUNCTION "evpipe_tracking_configs_notify"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('evpipe_tracking_configs', OLD."key");
    ELSE
        PERFORM pg_notify('evpipe_tracking_configs', NEW."key");
        IF TG_OP = 'UPDATE' AND OLD."key" IS DISTINCT FROM NEW."key" THEN
            PERFORM pg_notify('evpipe_tracking_configs', OLD."key");
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER "tracking_configs_notify"
    AFTER INSERT OR UPDATE OR DELETE ON "tracking_configs"
    FOR EACH ROW EXECUTE FUNCTION "evpipe_tracking_configs_notify"();
