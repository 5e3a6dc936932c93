-- 0001_init (down): removes the seed schema entirely, tables first (the foreign
-- keys go with them), then the enum types they used.

DROP TABLE "analytics_events";
DROP TABLE "analytics_sessions";
DROP TABLE "page_views";
DROP TABLE "conversion_events";
DROP TABLE "funnel_results";
DROP TABLE "funnels";
DROP TABLE "dashboard_widgets";
DROP TABLE "dashboards";
DROP TABLE "metric_snapshots";
DROP TABLE "tracking_configs";
DROP TABLE "exports";
DROP TABLE "reports";
DROP TABLE "audit_logs";

DROP TYPE "EventType";
DROP TYPE "DeviceType";
DROP TYPE "FunnelStatus";
DROP TYPE "ExportStatus";
DROP TYPE "ExportFormat";
DROP TYPE "ReportType";
DROP TYPE "ReportStatus";
DROP TYPE "DashboardType";
DROP TYPE "MetricAggregation";
DROP TYPE "MetricPeriod";
