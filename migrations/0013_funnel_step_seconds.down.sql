-- 0013_funnel_step_seconds (down): removes exactly what 0013_funnel_step_seconds.up.sql
-- added and restores the index it dropped.
CREATE INDEX "funnel_entry_periods_converted_idx" ON "funnel_entry_periods"("funnelId", "period", "periodStart")
    WHERE "level" >= 2;
DROP TABLE "funnel_period_step_seconds";
DROP TABLE "funnel_period_step_buckets";
