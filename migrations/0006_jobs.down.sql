-- 0006_jobs (down): removes exactly what 0006_jobs.up.sql added, in reverse.

DROP TRIGGER "reports_notify_pending" ON "reports";
DROP TRIGGER "reports_notify_insert" ON "reports";
DROP FUNCTION "evpipe_reports_notify"();

DROP INDEX "exports_completed_expiresAt_idx";
DROP INDEX "reports_claimable_idx";
DROP INDEX "exports_claimable_idx";

ALTER TABLE "reports" DROP COLUMN "leasedBy";
ALTER TABLE "reports" DROP COLUMN "leaseExpiresAt";
ALTER TABLE "reports" DROP COLUMN "attempts";

ALTER TABLE "exports" DROP COLUMN "leasedBy";
ALTER TABLE "exports" DROP COLUMN "leaseExpiresAt";
