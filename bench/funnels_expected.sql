-- The plain SQL full recomputation of one funnel (PRODUCT_VIEW → ADD_TO_CART →
-- PURCHASE, visitor scope, window :WINDOW seconds, BOT sessions out) per DAILY, WEEKLY
-- and MONTHLY period of entry: the bench's baseline for `evpipe funnels`, and an
-- independent check of its numbers. Each first step takes every later step at its
-- earliest time (the steps' types differ, so the earliest times form a chain); per
-- visitor and period the furthest chain counts, ties to the earliest first step.
SET TimeZone = 'UTC';
CREATE TEMP TABLE fev AS
    SELECT e."visitorId" AS v, e.type, e."occurredAt" AS t
    FROM analytics_events e JOIN analytics_sessions s ON s.id = e."sessionId"
    WHERE e.type IN ('PRODUCT_VIEW', 'ADD_TO_CART', 'PURCHASE')
      AND s."deviceType" IS DISTINCT FROM 'BOT';
CREATE INDEX ON fev (v, type, t);
ANALYZE fev;
CREATE TEMP TABLE fchain AS
    SELECT f.v, f.t AS t1, x2.t2, x3.t3
    FROM fev f
    LEFT JOIN LATERAL (SELECT min(t) AS t2 FROM fev g WHERE g.v = f.v AND g.type = 'ADD_TO_CART'
                       AND g.t >= f.t AND g.t <= f.t + :WINDOW * interval '1 second') x2 ON true
    LEFT JOIN LATERAL (SELECT min(t) AS t3 FROM fev g WHERE g.v = f.v AND g.type = 'PURCHASE'
                       AND g.t >= x2.t2 AND g.t <= f.t + :WINDOW * interval '1 second') x3 ON true
    WHERE f.type = 'PRODUCT_VIEW';
CREATE TABLE bench_funnel_full AS
WITH kinds(period, unit) AS (VALUES ('DAILY', 'day'), ('WEEKLY', 'week'), ('MONTHLY', 'month')),
best AS (
    SELECT DISTINCT ON (k.period, ps, c.v) k.period, date_trunc(k.unit, c.t1) AS ps,
           1 + (c.t2 IS NOT NULL)::int + (c.t3 IS NOT NULL)::int AS level, c.t1, c.t2, c.t3
    FROM fchain c CROSS JOIN kinds k
    ORDER BY k.period, ps, c.v, level DESC, c.t1, c.t2, c.t3)
SELECT period, ps,
       count(*) AS c1, count(*) FILTER (WHERE level >= 2) AS c2,
       count(*) FILTER (WHERE level >= 3) AS c3,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t2 - t1)) AS m2,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t3 - t2)) AS m3
FROM best GROUP BY period, ps;
