-- 0011_funnel_periods (down): removes exactly what 0011_funnel_periods.up.sql added.
DROP INDEX "funnel_entry_days_visitor_idx";
DROP TABLE "funnel_entry_periods";
