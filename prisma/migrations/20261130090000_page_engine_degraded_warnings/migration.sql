-- AlterTable
ALTER TABLE "Page" ADD COLUMN     "degraded" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "degradedReason" TEXT,
ADD COLUMN     "engine" TEXT,
ADD COLUMN     "warnings" TEXT[];
