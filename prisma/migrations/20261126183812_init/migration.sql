-- CreateEnum
CREATE TYPE "BatchState" AS ENUM ('listing', 'processing', 'completed', 'failed');

-- CreateEnum
CREATE TYPE "DocumentState" AS ENUM ('queued', 'classified', 'splitting', 'converting', 'inferring', 'done', 'failed');

-- CreateEnum
CREATE TYPE "DocumentClass" AS ENUM ('large', 'small', 'single');

-- CreateEnum
CREATE TYPE "PageState" AS ENUM ('pending', 'rendered', 'done', 'failed');

-- CreateEnum
CREATE TYPE "AuditOutcome" AS ENUM ('started', 'succeeded', 'failed', 'dead_lettered', 'replayed', 'skipped');

-- CreateTable
CREATE TABLE "Batch" (
    "id" UUID NOT NULL,
    "label" TEXT,
    "bucket" TEXT NOT NULL,
    "prefixes" TEXT[],
    "state" "BatchState" NOT NULL DEFAULT 'listing',
    "listingPrefix" INTEGER NOT NULL DEFAULT 0,
    "listingToken" TEXT,
    "listedAt" TIMESTAMP(3),
    "documentCount" INTEGER NOT NULL DEFAULT 0,
    "skippedCount" INTEGER NOT NULL DEFAULT 0,
    "options" JSONB NOT NULL DEFAULT '{}',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "completedAt" TIMESTAMP(3),

    CONSTRAINT "Batch_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Document" (
    "id" UUID NOT NULL,
    "batchId" UUID NOT NULL,
    "bucket" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "size" BIGINT,
    "etag" TEXT,
    "contentHash" TEXT,
    "state" "DocumentState" NOT NULL DEFAULT 'queued',
    "class" "DocumentClass",
    "pageCount" INTEGER,
    "failureCode" TEXT,
    "failureReason" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "completedAt" TIMESTAMP(3),

    CONSTRAINT "Document_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Chunk" (
    "id" UUID NOT NULL,
    "documentId" UUID NOT NULL,
    "firstPage" INTEGER NOT NULL,
    "lastPage" INTEGER NOT NULL,
    "key" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Chunk_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Page" (
    "id" UUID NOT NULL,
    "documentId" UUID NOT NULL,
    "pageNumber" INTEGER NOT NULL,
    "state" "PageState" NOT NULL DEFAULT 'pending',
    "pdfKey" TEXT,
    "imageKey" TEXT,
    "width" INTEGER,
    "height" INTEGER,
    "dpi" INTEGER,
    "renderMs" INTEGER,
    "failureCode" TEXT,
    "failureReason" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Page_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "InferenceResult" (
    "id" UUID NOT NULL,
    "pageId" UUID NOT NULL,
    "documentId" UUID NOT NULL,
    "pageNumber" INTEGER NOT NULL,
    "modelName" TEXT NOT NULL,
    "modelVersion" TEXT NOT NULL,
    "output" JSONB NOT NULL,
    "features" TEXT[],
    "latencyMs" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "InferenceResult_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AuditEvent" (
    "id" BIGSERIAL NOT NULL,
    "batchId" UUID,
    "documentId" UUID,
    "pageNumber" INTEGER,
    "stage" TEXT NOT NULL,
    "outcome" "AuditOutcome" NOT NULL,
    "workerId" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL DEFAULT 1,
    "durationMs" INTEGER,
    "errorCode" TEXT,
    "errorMessage" TEXT,
    "messageId" TEXT,
    "details" JSONB,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "AuditEvent_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Document_batchId_state_idx" ON "Document"("batchId", "state");

-- CreateIndex
CREATE UNIQUE INDEX "Document_batchId_bucket_key_key" ON "Document"("batchId", "bucket", "key");

-- CreateIndex
CREATE UNIQUE INDEX "Chunk_documentId_firstPage_key" ON "Chunk"("documentId", "firstPage");

-- CreateIndex
CREATE INDEX "Page_documentId_state_idx" ON "Page"("documentId", "state");

-- CreateIndex
CREATE UNIQUE INDEX "Page_documentId_pageNumber_key" ON "Page"("documentId", "pageNumber");

-- CreateIndex
CREATE UNIQUE INDEX "InferenceResult_pageId_key" ON "InferenceResult"("pageId");

-- CreateIndex
CREATE INDEX "InferenceResult_documentId_idx" ON "InferenceResult"("documentId");

-- CreateIndex
CREATE INDEX "AuditEvent_documentId_createdAt_idx" ON "AuditEvent"("documentId", "createdAt");

-- CreateIndex
CREATE INDEX "AuditEvent_batchId_createdAt_idx" ON "AuditEvent"("batchId", "createdAt");

-- AddForeignKey
ALTER TABLE "Document" ADD CONSTRAINT "Document_batchId_fkey" FOREIGN KEY ("batchId") REFERENCES "Batch"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Chunk" ADD CONSTRAINT "Chunk_documentId_fkey" FOREIGN KEY ("documentId") REFERENCES "Document"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Page" ADD CONSTRAINT "Page_documentId_fkey" FOREIGN KEY ("documentId") REFERENCES "Document"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "InferenceResult" ADD CONSTRAINT "InferenceResult_pageId_fkey" FOREIGN KEY ("pageId") REFERENCES "Page"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "InferenceResult" ADD CONSTRAINT "InferenceResult_documentId_fkey" FOREIGN KEY ("documentId") REFERENCES "Document"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AuditEvent" ADD CONSTRAINT "AuditEvent_batchId_fkey" FOREIGN KEY ("batchId") REFERENCES "Batch"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AuditEvent" ADD CONSTRAINT "AuditEvent_documentId_fkey" FOREIGN KEY ("documentId") REFERENCES "Document"("id") ON DELETE CASCADE ON UPDATE CASCADE;
