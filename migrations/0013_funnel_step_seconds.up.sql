-- 0013_funnel_step_seconds: per funnel, period of entry and step (2 and later), the
-- seconds from the previous step of the period's visitors as counted values, grouped in
-- buckets of ~2% width, both kept by the batches' deltas: a period's exact median is
-- found by walking its few bucket counts and then the values of one or two buckets,
-- instead of sorting every visitor of a month (docs/funnels.md).

-- bucket = floor(ln(1 + seconds) * 46), the same expression everywhere it is computed.
CREATE TABLE "funnel_period_step_buckets" (
    "funnelId" UUID NOT NULL,
    "period" "MetricPeriod" NOT NULL,
    "periodStart" TIMESTAMPTZ(3) NOT NULL,
    "step" SMALLINT NOT NULL,
    "bucket" SMALLINT NOT NULL,
    "visitors" BIGINT NOT NULL,

    CONSTRAINT "funnel_period_step_buckets_pkey" PRIMARY KEY ("funnelId", "period", "periodStart", "step", "bucket"),
    CONSTRAINT "funnel_period_step_buckets_funnelId_fkey" FOREIGN KEY ("funnelId") REFERENCES "funnels"("id") ON DELETE CASCADE
);

CREATE TABLE "funnel_period_step_seconds" (
    "funnelId" UUID NOT NULL,
    "period" "MetricPeriod" NOT NULL,
    "periodStart" TIMESTAMPTZ(3) NOT NULL,
    "step" SMALLINT NOT NULL,
    "bucket" SMALLINT NOT NULL,
    "seconds" DOUBLE PRECISION NOT NULL,
    "visitors" BIGINT NOT NULL,

    CONSTRAINT "funnel_period_step_seconds_pkey" PRIMARY KEY ("funnelId", "period", "periodStart", "step", "bucket", "seconds"),
    CONSTRAINT "funnel_period_step_seconds_funnelId_fkey" FOREIGN KEY ("funnelId") REFERENCES "funnels"("id") ON DELETE CASCADE
);

-- The state of funnels computed before this migration.
INSERT INTO "funnel_period_step_seconds"
SELECT b."funnelId", b."period", b."periodStart", (s.k + 1)::smallint,
       floor(ln(1 + greatest(s.v, 0)) * 46)::smallint, s.v, count(*)
FROM "funnel_entry_periods" b CROSS JOIN LATERAL unnest(b."stepSeconds") WITH ORDINALITY s(v, k)
GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO "funnel_period_step_buckets"
SELECT "funnelId", "period", "periodStart", "step", "bucket", sum("visitors")
FROM "funnel_period_step_seconds"
GROUP BY 1, 2, 3, 4, 5;

-- The medians no longer read funnel_entry_periods.
DROP INDEX "funnel_entry_periods_converted_idx";

-- The stages' role (0010) writes them like funnel_period_levels.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'evpipe_stages') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON "funnel_period_step_buckets", "funnel_period_step_seconds" TO evpipe_stages;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'evpipe_readonly') THEN
        GRANT SELECT ON "funnel_period_step_buckets", "funnel_period_step_seconds" TO evpipe_readonly;
    END IF;
END $$;
