-- Page quotas (issue 13): plans may meter pages as well as documents.
ALTER TABLE "UsagePlan" ADD COLUMN "quotaPages" INTEGER;
ALTER TABLE "QuotaCounter" ADD COLUMN "pages" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "UsageDaily" ADD COLUMN "pages" INTEGER NOT NULL DEFAULT 0;
