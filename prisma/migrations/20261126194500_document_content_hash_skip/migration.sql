-- Content-hash skip (batch option skipAlreadyProcessed): find a done document with the same
-- SHA-256 quickly, and record which document a skipped duplicate stands for.

-- AlterTable
ALTER TABLE "Document" ADD COLUMN     "duplicateOfId" UUID;

-- CreateIndex
CREATE INDEX "Document_contentHash_idx" ON "Document"("contentHash");
