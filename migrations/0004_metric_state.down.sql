DROP TABLE "metric_visitor_counts";
DROP TABLE "metric_visitors";
DROP TABLE "metric_rollups";
ALTER TABLE "downstream_stages" DROP COLUMN "appliedSettings";
