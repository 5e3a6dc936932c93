-- 0006_jobs: the job lifecycle of the exports and reports stages (docs/exports.md).
-- A worker claims a PENDING row (FOR UPDATE SKIP LOCKED), sets it PROCESSING with a
-- lease that it renews while it works; a PROCESSING row whose lease ran out belongs to
-- a worker that died and is claimed again. attempts counts the claims.

ALTER TABLE "exports" ADD COLUMN "leaseExpiresAt" TIMESTAMPTZ(3);
ALTER TABLE "exports" ADD COLUMN "leasedBy" TEXT;

ALTER TABLE "reports" ADD COLUMN "attempts" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "reports" ADD COLUMN "leaseExpiresAt" TIMESTAMPTZ(3);
ALTER TABLE "reports" ADD COLUMN "leasedBy" TEXT;

-- The claim scans only the rows a worker may take, oldest first.
CREATE INDEX "exports_claimable_idx" ON "exports"("createdAt")
    WHERE "status" IN ('PENDING', 'PROCESSING');
CREATE INDEX "reports_claimable_idx" ON "reports"("createdAt")
    WHERE "status" IN ('PENDING', 'PROCESSING');
-- The expiry sweeper.
CREATE INDEX "exports_completed_expiresAt_idx" ON "exports"("expiresAt")
    WHERE "status" = 'COMPLETED';

-- A report that becomes PENDING wakes the reports stage: LISTEN evpipe_reports,
-- payload = the report's id (as evpipe_exports does for exports since 0002).
CREATE FUNCTION "evpipe_reports_notify"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('evpipe_reports', NEW."id"::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER "reports_notify_insert"
    AFTER INSERT ON "reports"
    FOR EACH ROW WHEN (NEW."status" = 'PENDING')
    EXECUTE FUNCTION "evpipe_reports_notify"();

CREATE TRIGGER "reports_notify_pending"
    AFTER UPDATE OF "status" ON "reports"
    FOR EACH ROW WHEN (NEW."status" = 'PENDING' AND OLD."status" IS DISTINCT FROM NEW."status")
    EXECUTE FUNCTION "evpipe_reports_notify"();
