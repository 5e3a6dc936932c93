-- 0003_downstream_changes (down): removes exactly what 0003_downstream_changes.up.sql
-- added, in reverse.

DROP TRIGGER "page_views_dirty_delete" ON "page_views";
DROP TRIGGER "page_views_dirty_update" ON "page_views";
DROP TRIGGER "page_views_dirty_insert" ON "page_views";
DROP TRIGGER "conversion_events_dirty_delete" ON "conversion_events";
DROP TRIGGER "conversion_events_dirty_update" ON "conversion_events";
DROP TRIGGER "conversion_events_dirty_insert" ON "conversion_events";
DROP TRIGGER "analytics_events_dirty_delete" ON "analytics_events";
DROP TRIGGER "analytics_events_dirty_update" ON "analytics_events";
DROP TRIGGER "analytics_events_dirty_insert" ON "analytics_events";
DROP TRIGGER "analytics_sessions_dirty_delete" ON "analytics_sessions";
DROP TRIGGER "analytics_sessions_dirty_update" ON "analytics_sessions";
DROP TRIGGER "analytics_sessions_dirty_insert" ON "analytics_sessions";

DROP FUNCTION "evpipe_mark_dirty_hours"();

DROP TABLE "dirty_hours";
DROP TABLE "downstream_stages";
