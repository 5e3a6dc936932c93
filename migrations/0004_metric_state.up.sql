-- 0004_metric_state: the exact state behind metric_snapshots, so that absorbing a
-- change costs what the change touches, not what history holds (docs/metrics.md).

-- What each downstream stage last applied of the settings its results depend on
-- ({"excludeBots": true}); a change makes the stage recompute every stored hour.
ALTER TABLE "downstream_stages" ADD COLUMN "appliedSettings" JSONB;

-- Every metric but the UNIQUE ones, at every period: counts and sums as exact
-- NUMERIC, with their sample counts and extremes. HOURLY rows are computed from the
-- stored rows; DAILY from HOURLY, WEEKLY and MONTHLY from DAILY, YEARLY from MONTHLY.
CREATE TABLE "metric_rollups" (
    "period" "MetricPeriod" NOT NULL,
    "periodStart" TIMESTAMPTZ(3) NOT NULL,
    "metricKey" TEXT NOT NULL,
    "aggregation" "MetricAggregation" NOT NULL,
    "dimensions" JSONB NOT NULL,
    "total" NUMERIC NOT NULL,
    "samples" BIGINT NOT NULL,
    "minValue" NUMERIC,
    "maxValue" NUMERIC,

    CONSTRAINT "metric_rollups_pkey" PRIMARY KEY ("period", "periodStart", "metricKey")
);

-- The visitors of every period, overall ("deviceType" = '') and per device type, with
-- the number of their events in it: distinct counts cannot be added up from finer
-- periods, so each period keeps its own set, maintained by differences.
CREATE TABLE "metric_visitors" (
    "period" "MetricPeriod" NOT NULL,
    "periodStart" TIMESTAMPTZ(3) NOT NULL,
    "deviceType" TEXT NOT NULL,
    "visitorId" TEXT NOT NULL,
    "events" BIGINT NOT NULL,

    CONSTRAINT "metric_visitors_pkey" PRIMARY KEY ("period", "periodStart", "deviceType", "visitorId")
);

-- The size of each set above and its events, kept in step with it.
CREATE TABLE "metric_visitor_counts" (
    "period" "MetricPeriod" NOT NULL,
    "periodStart" TIMESTAMPTZ(3) NOT NULL,
    "deviceType" TEXT NOT NULL,
    "visitors" BIGINT NOT NULL,
    "events" BIGINT NOT NULL,

    CONSTRAINT "metric_visitor_counts_pkey" PRIMARY KEY ("period", "periodStart", "deviceType")
);
