// What the runs of bench:e2e share: a folder uploaded to a stack, a batch awaited and counted.
import { join } from "node:path";
import { listFiles } from "../../../services/cli/src/index.ts";
import type { LocalStack } from "../../../packages/local-stack/src/index.ts";
import { uploadFile } from "../../../packages/queue/src/index.ts";

export interface BatchRun {
  batchId: string;
  pages: number;
  documents: number;
  failedDocuments: number;
  /** From the batch's creation to its completion, as the database recorded them. */
  wallSeconds: number;
  /** This process (every thread) over the same span. */
  nodeCpuSeconds: number;
  /** Its main thread alone: every service's JavaScript, the stand-ins, the model; not the render threads. */
  mainThreadCpuSeconds: number;
  /** The embedded Postgres over the same span. */
  postgresCpuSeconds: number;
  /** This process's CPU by thread name over the same span (render threads are WorkerThread). */
  threads: Record<string, number>;
}

/** Requests the stand-ins answered between two `standInRequests()` snapshots, by kind. */
export function requestsSince(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([k, n]) => [k, n - (before[k] ?? 0)]).filter(([, n]) => n !== 0));
}

export async function uploadFolder(stack: LocalStack, folder: string, prefix: string): Promise<number> {
  const files = (await listFiles(folder)).filter((f) => f.toLowerCase().endsWith(".pdf"));
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < files.length) {
        const rel = files[next++]!;
        await uploadFile(stack.s3, stack.stagingBucket, prefix + rel.split("/").join("/"), join(folder, rel));
      }
    }),
  );
  return files.length;
}

/** Waits for the batch to end, polling its row; returns what it records. */
export async function awaitBatch(stack: LocalStack, batchId: string, timeoutMs: number): Promise<{ createdAt: Date; completedAt: Date; state: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const b = await stack.prisma.batch.findUniqueOrThrow({ where: { id: batchId }, select: { state: true, createdAt: true, completedAt: true } });
    if (b.state === "completed" || b.state === "failed") return { createdAt: b.createdAt, completedAt: b.completedAt ?? new Date(), state: b.state };
    if (Date.now() > deadline) throw new Error(`batch ${batchId} still ${b.state} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Pages and documents of a finished batch, from the database. */
export async function batchCounts(stack: LocalStack, batchId: string): Promise<{ pages: number; documents: number; failedDocuments: number }> {
  const [pages, documents, failedDocuments] = await Promise.all([
    stack.prisma.page.count({ where: { document: { batchId }, state: "done" } }),
    stack.prisma.document.count({ where: { batchId } }),
    stack.prisma.document.count({ where: { batchId, state: "failed" } }),
  ]);
  return { pages, documents, failedDocuments };
}
