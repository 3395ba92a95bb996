// `docpipe run` as the CLI does it (one process: the local stack, every service, the reference
// model), timed from the submission of the batch to its completion, with the CPU it used.
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { ApiClient, listFiles, startPipeline } from "../../../services/cli/src/index.ts";
import { start as startStack, type LocalStack } from "../../../packages/local-stack/src/index.ts";
import { createLogger, uploadFile } from "../../../packages/queue/src/index.ts";
import { threadCpuSeconds, treeCpuSeconds } from "./proc.ts";

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

const cpuOfNode = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const cpuOfMainThread = () => {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1e6;
};

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

export async function runInProcess(folder: string, opts: { dpi: number; logFile: string; timeoutMs: number }): Promise<BatchRun> {
  const log = createWriteStream(opts.logFile);
  // As `docpipe run`: info-level logs to a file.
  const logger = createLogger({ service: "docpipe", level: "info", destination: log });
  const stack = await startStack({ name: `bench-e2e-${process.pid}`, ephemeral: false, handleSignals: true, logger });
  try {
    const pipeline = await startPipeline({ stack, logger, dpi: opts.dpi });
    try {
      const prefix = "bench-e2e/";
      await uploadFolder(stack, folder, prefix);
      const api = new ApiClient(pipeline.apiUrl, pipeline.apiKey);
      const node0 = cpuOfNode();
      const main0 = cpuOfMainThread();
      const threads0 = threadCpuSeconds();
      const pg0 = treeCpuSeconds(process.pid, { match: /^postgres$/ });
      const { batchId } = await api.submit({ bucket: stack.stagingBucket, prefixes: [prefix], label: "bench-e2e" });
      const end = await awaitBatch(stack, batchId, opts.timeoutMs);
      const nodeCpuSeconds = cpuOfNode() - node0;
      const mainThreadCpuSeconds = cpuOfMainThread() - main0;
      const threads = Object.fromEntries([...threadCpuSeconds()].map(([name, s]) => [name, s - (threads0.get(name) ?? 0)]));
      const postgresCpuSeconds = treeCpuSeconds(process.pid, { match: /^postgres$/ }) - pg0;
      const counts = await batchCounts(stack, batchId);
      return {
        batchId,
        ...counts,
        wallSeconds: (end.completedAt.getTime() - end.createdAt.getTime()) / 1000,
        nodeCpuSeconds,
        mainThreadCpuSeconds,
        postgresCpuSeconds,
        threads,
      };
    } finally {
      await pipeline.stop();
    }
  } finally {
    const dataDir = stack.dataDir;
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
    log.end();
  }
}
