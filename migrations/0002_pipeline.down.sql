-- 0002_pipeline (down): removes exactly what 0002_pipeline.up.sql added, in reverse.

DROP TRIGGER "tracking_configs_notify" ON "tracking_configs";
DROP FUNCTION "evpipe_tracking_configs_notify"();

DROP TRIGGER "exports_notify_pending" ON "exports";
DROP TRIGGER "exports_notify_insert" ON "exports";
DROP FUNCTION "evpipe_exports_notify"();

ALTER TABLE "funnel_results" DROP CONSTRAINT "funnel_results_funnelId_period_periodStart_periodEnd_key";

DROP TRIGGER "audit_logs_append_only_truncate" ON "audit_logs";
DROP TRIGGER "audit_logs_append_only_row" ON "audit_logs";
DROP FUNCTION "evpipe_audit_logs_append_only"();

DROP TABLE "consumer_offsets";

DROP INDEX "conversion_events_sessionId_idx";
DROP INDEX "page_views_sessionId_idx";
DROP INDEX "analytics_events_visitorId_occurredAt_idx";
DROP INDEX "analytics_events_sessionId_idx";
DROP INDEX "analytics_sessions_visitorId_endedAt_idx";

DROP INDEX "conversion_events_eventId_key";
DROP INDEX "page_views_eventId_key";
DROP INDEX "analytics_events_eventId_key";

ALTER TABLE "analytics_events"
    DROP COLUMN "scrollDepth",
    DROP COLUMN "timeOnPage",
    DROP COLUMN "pageViewId",
    DROP COLUMN "referrer";

ALTER TABLE "analytics_sessions" DROP COLUMN "startReason";
DROP TYPE "SessionStartReason";
