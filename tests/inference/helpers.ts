import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import { generatePdf, renderPage } from "@docpipe/pdf";
import { imageKey, type DocumentRef } from "@docpipe/queue";

/** PNGs of real rendered pages: a blank one and one with text and an image (computed once). */
let pngs: Promise<{ blank: Uint8Array; ink: Uint8Array }> | undefined;
export function pagePngs(): Promise<{ blank: Uint8Array; ink: Uint8Array }> {
  pngs ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "docpipe-inference-test-"));
    try {
      await generatePdf(join(dir, "blank.pdf"), [{ widthPt: 612, heightPt: 792, content: "blank" }]);
      await generatePdf(join(dir, "ink.pdf"), [{ widthPt: 612, heightPt: 792, content: "mixed" }]);
      return {
        blank: (await renderPage(join(dir, "blank.pdf"), 0, { dpi: 40 })).png,
        ink: (await renderPage(join(dir, "ink.pdf"), 0, { dpi: 40 })).png,
      };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return pngs;
}

export interface SeededDocument extends DocumentRef {
  pageCount: number;
}

/** A batch with one document of `pageCount` pages at the converting stage, as the page converter leaves it. */
export async function seedDocument(prisma: PrismaClient, bucket: string, pageCount: number): Promise<SeededDocument> {
  const batch = await prisma.batch.create({ data: { bucket: "docpipe-staging", prefixes: ["in/"], state: "processing" } });
  const doc = await prisma.document.create({
    data: { batchId: batch.id, bucket: "docpipe-staging", key: `in/${batch.id}.pdf`, state: "converting", pageCount, class: "small" },
  });
  const ref = { batchId: batch.id, documentId: doc.id };
  await prisma.page.createMany({
    data: Array.from({ length: pageCount }, (_, i) => ({
      documentId: doc.id,
      pageNumber: i + 1,
      state: "rendered" as const,
      imageKey: imageKey(ref, i + 1),
      pdfKey: `batches/${batch.id}/documents/${doc.id}/pages/${i + 1}.pdf`,
    })),
  });
  return { ...ref, pageCount };
}

/** Uploads a page's PNG under its image key; the local stack's bridge turns that into a converted-image message. */
export async function uploadPageImage(s3: S3Client, bucket: string, ref: DocumentRef, pageNumber: number, png: Uint8Array): Promise<string> {
  const key = imageKey(ref, pageNumber);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: png, ContentType: "image/png" }));
  return key;
}

/** An S3 object-created notification for `key`, as S3 (and the local bridge) sends it. */
export function s3Event(bucket: string, key: string): string {
  return JSON.stringify({
    Records: [
      {
        eventVersion: "2.1",
        eventSource: "aws:s3",
        eventName: "ObjectCreated:Put",
        s3: { bucket: { name: bucket }, object: { key: encodeURIComponent(key).replace(/%2F/g, "/"), size: 1 } },
      },
    ],
  });
}

export async function sendRaw(sqs: SQSClient, queueUrl: string, body: string): Promise<void> {
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
}

export { seededRandom } from "../fixtures/wait.js";
