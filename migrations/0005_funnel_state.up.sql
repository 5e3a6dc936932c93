-- 0005_funnel_state: what evpipe funnels keeps beside funnel_results so that a late
-- event costs the days it can affect, not the funnel's history (docs/funnels.md).

-- Per funnel: the definition (updatedAt) and status the stored results were computed
-- for, or that was found malformed (valid = false, error = why; audited once per
-- updatedAt). A funnel that is ACTIVE with no row, a newer updatedAt, or a stored
-- status other than ACTIVE is computed over its whole history.
CREATE TABLE "funnel_stage_state" (
    "funnelId" UUID NOT NULL,
    "definitionUpdatedAt" TIMESTAMPTZ(3) NOT NULL,
    "status" "FunnelStatus" NOT NULL,
    "valid" BOOLEAN NOT NULL,
    "error" TEXT,
    "computedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),

    CONSTRAINT "funnel_stage_state_pkey" PRIMARY KEY ("funnelId"),
    CONSTRAINT "funnel_stage_state_funnelId_fkey" FOREIGN KEY ("funnelId") REFERENCES "funnels"("id") ON DELETE CASCADE
);

-- The furthest chain of each unit (visitorId) per funnel and UTC day of its first
-- step: level = steps reached, stepSeconds[k] = seconds from step k+1 to step k+2 of
-- that chain. DAILY results are folded from one day's rows, WEEKLY and MONTHLY from
-- their days' rows (per visitor the furthest, ties to the earliest firstAt).
CREATE TABLE "funnel_entry_days" (
    "funnelId" UUID NOT NULL,
    "day" DATE NOT NULL,
    "visitorId" TEXT NOT NULL,
    "firstAt" TIMESTAMPTZ(3) NOT NULL,
    "level" SMALLINT NOT NULL,
    "stepSeconds" DOUBLE PRECISION[] NOT NULL,

    CONSTRAINT "funnel_entry_days_pkey" PRIMARY KEY ("funnelId", "day", "visitorId"),
    CONSTRAINT "funnel_entry_days_funnelId_fkey" FOREIGN KEY ("funnelId") REFERENCES "funnels"("id") ON DELETE CASCADE
);
