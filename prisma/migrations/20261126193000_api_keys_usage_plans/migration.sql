-- API keys (hashed), usage plans, and the Postgres counters every ingestion process shares.

-- CreateEnum
CREATE TYPE "QuotaPeriod" AS ENUM ('day', 'month');

-- AlterTable
ALTER TABLE "Batch" ADD COLUMN     "apiKeyId" UUID,
ADD COLUMN     "failureCode" TEXT,
ADD COLUMN     "failureReason" TEXT,
ADD COLUMN     "listingStartAfter" TEXT,
ADD COLUMN     "owner" TEXT,
ADD COLUMN     "parentBatchId" UUID;

-- CreateTable
CREATE TABLE "UsagePlan" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "ratePerSecond" DOUBLE PRECISION NOT NULL,
    "burst" INTEGER NOT NULL,
    "quotaDocuments" INTEGER,
    "quotaPeriod" "QuotaPeriod" NOT NULL DEFAULT 'day',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "UsagePlan_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiKey" (
    "id" UUID NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "previousHash" TEXT,
    "previousPrefix" TEXT,
    "previousExpiresAt" TIMESTAMP(3),
    "name" TEXT NOT NULL,
    "owner" TEXT NOT NULL,
    "planId" UUID NOT NULL,
    "allowedBuckets" TEXT[],
    "allowedPrefixes" TEXT[],
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "disabledAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "rotatedAt" TIMESTAMP(3),
    "lastUsedAt" TIMESTAMP(3),

    CONSTRAINT "ApiKey_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "RateBucket" (
    "apiKeyId" UUID NOT NULL,
    "tokens" DOUBLE PRECISION NOT NULL,
    "lastAllowed" BOOLEAN NOT NULL,
    "updatedAt" TIMESTAMPTZ(6) NOT NULL,

    CONSTRAINT "RateBucket_pkey" PRIMARY KEY ("apiKeyId")
);

-- CreateTable
CREATE TABLE "QuotaCounter" (
    "apiKeyId" UUID NOT NULL,
    "periodStart" DATE NOT NULL,
    "used" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "QuotaCounter_pkey" PRIMARY KEY ("apiKeyId","periodStart")
);

-- CreateTable
CREATE TABLE "UsageDaily" (
    "apiKeyId" UUID NOT NULL,
    "day" DATE NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "throttled" INTEGER NOT NULL DEFAULT 0,
    "batches" INTEGER NOT NULL DEFAULT 0,
    "documents" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "UsageDaily_pkey" PRIMARY KEY ("apiKeyId","day")
);

-- CreateIndex
CREATE UNIQUE INDEX "UsagePlan_name_key" ON "UsagePlan"("name");

-- CreateIndex
CREATE UNIQUE INDEX "ApiKey_prefix_key" ON "ApiKey"("prefix");

-- CreateIndex
CREATE UNIQUE INDEX "ApiKey_hash_key" ON "ApiKey"("hash");

-- CreateIndex
CREATE UNIQUE INDEX "ApiKey_previousHash_key" ON "ApiKey"("previousHash");

-- CreateIndex
CREATE INDEX "ApiKey_owner_idx" ON "ApiKey"("owner");

-- CreateIndex
CREATE INDEX "Batch_owner_createdAt_idx" ON "Batch"("owner", "createdAt");

-- AddForeignKey
ALTER TABLE "Batch" ADD CONSTRAINT "Batch_apiKeyId_fkey" FOREIGN KEY ("apiKeyId") REFERENCES "ApiKey"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Batch" ADD CONSTRAINT "Batch_parentBatchId_fkey" FOREIGN KEY ("parentBatchId") REFERENCES "Batch"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ApiKey" ADD CONSTRAINT "ApiKey_planId_fkey" FOREIGN KEY ("planId") REFERENCES "UsagePlan"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "RateBucket" ADD CONSTRAINT "RateBucket_apiKeyId_fkey" FOREIGN KEY ("apiKeyId") REFERENCES "ApiKey"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "QuotaCounter" ADD CONSTRAINT "QuotaCounter_apiKeyId_fkey" FOREIGN KEY ("apiKeyId") REFERENCES "ApiKey"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "UsageDaily" ADD CONSTRAINT "UsageDaily_apiKeyId_fkey" FOREIGN KEY ("apiKeyId") REFERENCES "ApiKey"("id") ON DELETE CASCADE ON UPDATE CASCADE;


-- Plans a key can be given from the start (more with `docpipe plans create`).
INSERT INTO "UsagePlan" ("id", "name", "ratePerSecond", "burst", "quotaDocuments", "quotaPeriod", "updatedAt") VALUES
  ('00000000-0000-4000-8000-000000000001', 'standard', 10, 20, 100000, 'day', CURRENT_TIMESTAMP),
  ('00000000-0000-4000-8000-000000000002', 'bulk', 50, 100, 10000000, 'month', CURRENT_TIMESTAMP),
  ('00000000-0000-4000-8000-000000000003', 'local', 1000, 1000, NULL, 'day', CURRENT_TIMESTAMP);
