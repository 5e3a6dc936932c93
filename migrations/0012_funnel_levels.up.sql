-- 0012_funnel_levels: per funnel and period of entry, how many visitors stopped at each
-- level, kept by the batches' deltas, so that a period's step counts are read from a
-- few rows and its medians from the visitors who went past the first step only
-- (docs/funnels.md).

CREATE TABLE "funnel_period_levels" (
    "funnelId" UUID NOT NULL,
    "period" "MetricPeriod" NOT NULL,
    "periodStart" TIMESTAMPTZ(3) NOT NULL,
    "level" SMALLINT NOT NULL,
    "visitors" BIGINT NOT NULL,

    CONSTRAINT "funnel_period_levels_pkey" PRIMARY KEY ("funnelId", "period", "periodStart", "level"),
    CONSTRAINT "funnel_period_levels_funnelId_fkey" FOREIGN KEY ("funnelId") REFERENCES "funnels"("id") ON DELETE CASCADE
);

-- The medians of steps 2 and later read the visitors who reached step 2 only.
CREATE INDEX "funnel_entry_periods_converted_idx" ON "funnel_entry_periods"("funnelId", "period", "periodStart")
    WHERE "level" >= 2;

-- The state of funnels computed before this migration.
INSERT INTO "funnel_period_levels"
SELECT "funnelId", "period", "periodStart", "level", count(*)
FROM "funnel_entry_periods"
GROUP BY "funnelId", "period", "periodStart", "level";

-- The stages' role (0010) writes it like funnel_entry_periods.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'evpipe_stages') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON "funnel_period_levels" TO evpipe_stages;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'evpipe_readonly') THEN
        GRANT SELECT ON "funnel_period_levels" TO evpipe_readonly;
    END IF;
END $$;
