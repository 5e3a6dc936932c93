-- 0012_funnel_levels (down): removes exactly what 0012_funnel_levels.up.sql added.
DROP INDEX "funnel_entry_periods_converted_idx";
DROP TABLE "funnel_period_levels";
