-- 0011_funnel_periods: the per-visitor best of each DAILY, WEEKLY and MONTHLY period of
-- entry, kept beside funnel_entry_days so that a batch re-folds only its own visitors
-- and a period's result is read from one row per visitor (docs/funnels.md).

-- Per funnel, period and visitor: the furthest level among the visitor's entry days of
-- the period (ties to the earliest firstAt), with that day's stepSeconds.
CREATE TABLE "funnel_entry_periods" (
    "funnelId" UUID NOT NULL,
    "period" "MetricPeriod" NOT NULL,
    "periodStart" TIMESTAMPTZ(3) NOT NULL,
    "visitorId" TEXT NOT NULL,
    "firstAt" TIMESTAMPTZ(3) NOT NULL,
    "level" SMALLINT NOT NULL,
    "stepSeconds" DOUBLE PRECISION[] NOT NULL,

    CONSTRAINT "funnel_entry_periods_pkey" PRIMARY KEY ("funnelId", "period", "periodStart", "visitorId"),
    CONSTRAINT "funnel_entry_periods_funnelId_fkey" FOREIGN KEY ("funnelId") REFERENCES "funnels"("id") ON DELETE CASCADE
);

-- A batch reads the entry days of its visitors only.
CREATE INDEX "funnel_entry_days_visitor_idx" ON "funnel_entry_days"("funnelId", "visitorId", "day");

-- The state of funnels computed before this migration.
INSERT INTO "funnel_entry_periods"
SELECT DISTINCT ON (e."funnelId", p.period, p.ps, e."visitorId")
       e."funnelId", p.period, p.ps, e."visitorId", e."firstAt", e."level", e."stepSeconds"
FROM "funnel_entry_days" e,
     LATERAL (VALUES ('DAILY'::"MetricPeriod", e."day"::timestamp AT TIME ZONE 'UTC'),
                     ('WEEKLY', date_trunc('week', e."day"::timestamp) AT TIME ZONE 'UTC'),
                     ('MONTHLY', date_trunc('month', e."day"::timestamp) AT TIME ZONE 'UTC')) p(period, ps)
ORDER BY e."funnelId", p.period, p.ps, e."visitorId", e."level" DESC, e."firstAt";

-- The stages' role (0010) writes it like funnel_entry_days.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'evpipe_stages') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON "funnel_entry_periods" TO evpipe_stages;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'evpipe_readonly') THEN
        GRANT SELECT ON "funnel_entry_periods" TO evpipe_readonly;
    END IF;
END $$;
