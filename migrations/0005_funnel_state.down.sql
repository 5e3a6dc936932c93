-- 0005_funnel_state (down): removes exactly what 0005_funnel_state.up.sql added.
DROP TABLE "funnel_entry_days";
DROP TABLE "funnel_stage_state";
