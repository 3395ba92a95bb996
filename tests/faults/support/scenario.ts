// What the fault tests share: a seeded corpus with its truth, waiting for a batch with a useful
// message when it does not finish, and the checks of the outcome against that truth.
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { counterDrift, workAttempts, type PrismaClient } from "@docpipe/db";
import type { LocalStack } from "@docpipe/local-stack";
import { generatePdf, PAGE_SIZES, type CorpusFile, type CorpusPageSpec } from "@docpipe/pdf";
import { parseImageKey, uploadFile } from "@docpipe/queue";
import { expect } from "vitest";
import type { BatchReport } from "@docpipe/cli";
import { listKeys, mapLimit } from "../../e2e/support.js";

import { queueDepth } from "../../fixtures/queues.js";
import { waitFor } from "../../fixtures/wait.js";

export { seededRandom } from "../../fixtures/wait.js";

export const randomInt = (random: () => number, min: number, max: number): number => min + Math.floor(random() * (max - min + 1));

/** The design's thresholds, which the services run with (size never decides here: every file is small). */
const LARGE_PAGES = 10;
const CHUNK_PAGES = 10;

export type DocClass = "large" | "small" | "single";

export interface TruthDoc {
  key: string;
  file: CorpusFile;
  cls: DocClass;
  /** Page numbers (1-based) generated with no content. */
  blankPages: number[];
}

export interface CorpusPlan {
  singles: number;
  /** Page counts of small documents (2–10 each). */
  small: number[];
  /** Page counts of documents large by page count (over 10 each). */
  large: number[];
}

/** A plan of `docs` documents mixing singles, small and large-by-page-count ones with at least `minPages` pages in all. */
export function planCorpus(random: () => number, opts: { singles: number; small: number; large: number; minPages: number }): CorpusPlan {
  const small = Array.from({ length: opts.small }, () => randomInt(random, 2, LARGE_PAGES));
  const large = Array.from({ length: opts.large }, () => randomInt(random, LARGE_PAGES + 1, 45));
  const total = () => opts.singles + small.reduce((a, b) => a + b, 0) + large.reduce((a, b) => a + b, 0);
  // Top up the large documents until the batch has its pages; one ends on a short last chunk.
  for (let i = 0; total() < opts.minPages; i = (i + 1) % large.length) large[i]! += CHUNK_PAGES;
  return { singles: opts.singles, small, large };
}

/** Cheap pages: small sizes, text, a blank one now and then (the model's "blank" feature), two rotations. */
const SIZES = [PAGE_SIZES.label2x1, PAGE_SIZES.label4x6, PAGE_SIZES.label2x1, PAGE_SIZES.letter] as const;
function pageSpecs(count: number, seed: number): CorpusPageSpec[] {
  return Array.from({ length: count }, (_, i) => {
    const [widthPt, heightPt] = SIZES[(i + seed) % SIZES.length]!;
    return { widthPt, heightPt, rotate: (i + seed) % 5 === 0 ? 90 : 0, content: (i + seed) % 7 === 3 ? "blank" : "text" };
  });
}

const classOf = (pages: number): DocClass => (pages === 1 ? "single" : pages > LARGE_PAGES ? "large" : "small");

/**
 * Writes the planned PDFs under `dir` (`single/000-1p.pdf`, `small/…`, `large/…`) and returns the
 * truth, keyed by each file's path under `dir` with `/`; `prefix` goes before every key.
 */
export async function writeCorpus(dir: string, plan: CorpusPlan, prefix = ""): Promise<TruthDoc[]> {
  const counts = [...Array.from({ length: plan.singles }, () => 1), ...plan.small, ...plan.large];
  const docs = await mapLimit(
    counts.map((pages, i) => ({ pages, i })),
    4,
    async ({ pages, i }) => {
      const cls = classOf(pages);
      const name = `${cls}/${String(i).padStart(3, "0")}-${pages}p.pdf`;
      const path = join(dir, name);
      await mkdir(dirname(path), { recursive: true });
      const specs = pageSpecs(pages, i);
      const file = await generatePdf(path, specs);
      const blankPages = specs.flatMap((s, n) => (s.content === "blank" ? [n + 1] : []));
      return { key: prefix + name, file, cls, blankPages };
    },
  );
  return docs.sort((a, b) => a.key.localeCompare(b.key));
}

/** Writes the planned PDFs under `dir` and uploads them to the staging bucket under `prefix`. */
export async function buildCorpus(stack: LocalStack, dir: string, prefix: string, plan: CorpusPlan): Promise<TruthDoc[]> {
  const truth = await writeCorpus(dir, plan, prefix);
  await mapLimit(truth, 4, (t) => uploadFile(stack.s3, stack.stagingBucket, t.key, t.file.path, "application/pdf"));
  return truth;
}

export const totalPages = (truth: TruthDoc[]): number => truth.reduce((s, d) => s + d.file.pageCount, 0);

/**
 * Waits until the batch is completed or failed. On timeout, fails with the documents still
 * open, each with its state and last audit events, so a stuck run says where it is stuck.
 */
export async function waitForBatch(prisma: PrismaClient, batchId: string, timeoutMs: number, onTick?: () => void): Promise<string> {
  return waitFor(
    `batch ${batchId} to finish`,
    async () => {
      const batch = await prisma.batch.findUnique({ where: { id: batchId }, select: { state: true } });
      if (batch && (batch.state === "completed" || batch.state === "failed")) return batch.state;
      onTick?.();
      return undefined;
    },
    { timeoutMs, intervalMs: 500, describe: () => stuckReport(prisma, batchId) },
  );
}

async function stuckReport(prisma: PrismaClient, batchId: string): Promise<string> {
  const batch = await prisma.batch.findUnique({ where: { id: batchId } });
  const open = await prisma.document.findMany({
    where: { batchId, state: { notIn: ["done", "failed"] } },
    select: { id: true, key: true, state: true, pageCount: true, _count: { select: { pages: true } } },
    take: 20,
  });
  const lines = await Promise.all(
    open.map(async (d) => {
      const events = await prisma.auditEvent.findMany({
        where: { documentId: d.id },
        orderBy: { id: "desc" },
        take: 4,
        select: { stage: true, outcome: true, pageNumber: true, attempt: true, errorCode: true, workerId: true, createdAt: true },
      });
      const trail = events
        .reverse()
        .map((e) => `${e.createdAt.toISOString().slice(11, 23)} ${e.stage}${e.pageNumber ? `#${e.pageNumber}` : ""} ${e.outcome} attempt ${e.attempt}${e.errorCode ? ` ${e.errorCode}` : ""} (${e.workerId})`)
        .join("; ");
      return `  ${d.key} [${d.state}, ${d._count.pages}/${d.pageCount ?? "?"} pages]: ${trail || "no audit events"}`;
    }),
  );
  const openCount = await prisma.document.count({ where: { batchId, state: { notIn: ["done", "failed"] } } });
  return [
    `state ${batch?.state ?? "missing"}; ${openCount} documents still open:`,
    ...lines,
    ...(openCount > lines.length ? [`  ... and ${openCount - lines.length} more`] : []),
  ].join("\n");
}

/**
 * Checks a finished batch against the truth: every document done with its true page count;
 * exactly one PNG per page in S3 and nothing else under the images prefix; exactly one Page row
 * and one InferenceResult per page; each stage a document needs has at least one succeeded audit
 * event (per chunk, per page); and the report's counts equal the truth.
 */
export async function expectBatchMatchesTruth(
  stack: Pick<LocalStack, "s3" | "workBucket">,
  prisma: PrismaClient,
  batchId: string,
  truth: TruthDoc[],
  report: BatchReport,
): Promise<void> {
  const pages = totalPages(truth);
  const documents = await prisma.document.findMany({ where: { batchId }, select: { id: true, key: true, state: true, pageCount: true, failureCode: true } });
  const byKey = new Map(documents.map((d) => [d.key, d]));
  // Documents: exactly the corpus, each done with its true page count.
  expect(documents.map((d) => d.key).sort()).toEqual(truth.map((t) => t.key));
  expect(Object.fromEntries(documents.map((d) => [d.key, `${d.state} ${d.pageCount} ${d.failureCode ?? ""}`]))).toEqual(
    Object.fromEntries(truth.map((t) => [t.key, `done ${t.file.pageCount} `])),
  );
  const expectedPages = new Set(truth.flatMap((t) => Array.from({ length: t.file.pageCount }, (_, i) => `${byKey.get(t.key)!.id}#${i + 1}`)));

  // S3: one PNG per page, none missing, none extra (keys are deterministic, so a duplicate is an overwrite, a stray is a bug).
  const imageKeys = (await listKeys(stack.s3, stack.workBucket, `batches/${batchId}/`)).filter((k) => k.endsWith(".png"));
  const imagePages = imageKeys.map((k) => {
    const ref = parseImageKey(k);
    return ref ? `${ref.documentId}#${ref.pageNumber}` : `unparsable ${k}`;
  });
  expect(imagePages.length).toBe(pages);
  expect(new Set(imagePages)).toEqual(expectedPages);

  // Database: one Page row per page, each done, each with exactly one result.
  const rows = await prisma.page.findMany({
    where: { document: { batchId } },
    select: { documentId: true, pageNumber: true, state: true, imageKey: true, result: { select: { id: true } } },
  });
  expect(rows.length).toBe(pages);
  expect(new Set(rows.map((r) => `${r.documentId}#${r.pageNumber}`))).toEqual(expectedPages);
  expect(rows.filter((r) => r.state !== "done" || r.imageKey === null || r.result === null)).toEqual([]);
  // pageId is unique, so one result per page row and as many results as pages means exactly one each.
  expect(await prisma.inferenceResult.count({ where: { document: { batchId } } })).toBe(pages);

  // Audit: no document misses a stage; each expected unit of work succeeded at least once.
  const events = await prisma.auditEvent.findMany({
    where: { batchId, documentId: { not: null }, outcome: "succeeded" },
    select: { documentId: true, stage: true, pageNumber: true, details: true },
  });
  const missing: string[] = [];
  for (const t of truth) {
    const doc = byKey.get(t.key)!;
    const mine = events.filter((e) => e.documentId === doc.id);
    const has = (stage: string, pred: (e: (typeof mine)[number]) => boolean = () => true) => mine.some((e) => e.stage === stage && pred(e));
    const need = (what: string, ok: boolean) => {
      if (!ok) missing.push(`${t.key}: ${what}`);
    };
    need("ingestion", has("ingestion"));
    need("classify", has("classify"));
    if (t.cls === "large") need("split-large", has("split-large"));
    const n = t.file.pageCount;
    const ranges = t.cls === "large" ? chunkRanges(n) : t.cls === "small" ? [[1, n] as const] : [];
    for (const [first, last] of ranges) {
      need(`split-small ${first}-${last}`, has("split-small", (e) => {
        const d = e.details as { firstPage?: number; lastPage?: number } | null;
        return d?.firstPage === first && d.lastPage === last;
      }));
    }
    for (let p = 1; p <= n; p++) {
      need(`convert #${p}`, has("convert", (e) => e.pageNumber === p));
      need(`inference #${p}`, has("inference", (e) => e.pageNumber === p));
    }
  }
  expect(missing, "stages without a succeeded audit event").toEqual([]);

  // The counters the database kept as work happened equal a recount of the rows.
  expect(await counterDrift(prisma, batchId), "counters that differ from a recount").toEqual([]);

  // The report, from the database, equals the truth.
  const blank = truth.reduce((s, t) => s + t.blankPages.length, 0);
  const withBlank = truth.filter((t) => t.blankPages.length > 0).length;
  const withInk = truth.filter((t) => t.blankPages.length < t.file.pageCount).length;
  expect(report).toMatchObject({
    batchId,
    state: "completed",
    documents: { total: truth.length, done: truth.length, failed: 0, inProgress: 0 },
    pages: { total: pages, rendered: pages, withResults: pages, failed: 0 },
    failures: [],
  });
  expect(report.features).toEqual([
    { feature: "blank", pages: blank, documentsWith: withBlank, documentsWithout: truth.length - withBlank },
    { feature: "ink", pages: pages - blank, documentsWith: withInk, documentsWithout: truth.length - withInk },
  ]);
}

/** `[first, last]` of every chunk the large splitter writes for n pages. */
export const chunkRanges = (n: number): (readonly [number, number])[] =>
  Array.from({ length: Math.ceil(n / CHUNK_PAGES) }, (_, i) => [i * CHUNK_PAGES + 1, Math.min(n, (i + 1) * CHUNK_PAGES)] as const);

/**
 * An API key for the batch's bucket (the ingestion API asks every caller for one), on the
 * "local" usage plan the migrations seed.
 */
export async function createTestApiKey(prisma: PrismaClient, bucket: string): Promise<string> {
  const { createApiKey } = await import("@docpipe/api-keys");
  const created = await createApiKey(prisma, { name: "fault tests", owner: "tests", plan: "local", buckets: [bucket] });
  return created.key;
}

/**
 * Waits until no message of the pipeline's queues is waiting or in flight: a worker killed
 * between its last message and its audit record leaves that message to come back after its
 * visibility timeout and write the record then, possibly after the batch has completed.
 * Nothing in flight means every such redelivery has been handled.
 */
export async function waitForQuietQueues(stack: LocalStack, timeoutMs: number): Promise<void> {
  const urls = Object.entries(stack.queueUrls).filter(([key]) => key !== "parked").map(([, q]) => q.url);
  let counts: number[] = [];
  await waitFor(
    "every queue to be empty",
    async () => {
      counts = await Promise.all(urls.map((url) => queueDepth(stack.sqs, url)));
      return counts.every((c) => c === 0);
    },
    { timeoutMs, intervalMs: 250, describe: () => `messages per queue ${counts.join(", ")}` },
  );
}

/**
 * The seeds a fault test runs with, printed by the test: `CHAOS_SEED=n` replays one run,
 * `CHAOS_SOAK=n` runs n random ones (a soak loop), and otherwise the test's fixed seed, as CI runs it.
 */
export function chaosSeeds(fixed: number): number[] {
  if (process.env.CHAOS_SEED) return [Number(process.env.CHAOS_SEED)];
  const soak = Number(process.env.CHAOS_SOAK ?? 0);
  if (soak > 0) return Array.from({ length: soak }, () => Math.floor(Math.random() * 1_000_000));
  return [fixed];
}

/** Work counted outside the audit trail: renders asked of the render pool, calls the model answered. */
export interface WorkCounts {
  renders: number;
  modelCalls: number;
}

/**
 * No render and no model call beyond what the audit trail accounts for (`workAttempts`): no page
 * worked more often than its recorded retries explain, and the work counted outside the trail
 * (`counted`) at most the attempts recorded. Returns the recorded attempts.
 */
export async function expectNoUnexplainedWork(prisma: PrismaClient, batchId: string, counted?: WorkCounts): Promise<{ convert: number; inference: number }> {
  const { convert, inference, unexplained } = await workAttempts(prisma, batchId);
  const trails = await Promise.all(
    unexplained.map(async (u) => {
      const trail = await prisma.auditEvent.findMany({
        where: { documentId: u.documentId, pageNumber: u.pageNumber, stage: u.stage },
        orderBy: { id: "asc" },
        select: { outcome: true, attempt: true, messageId: true, workerId: true, createdAt: true, details: true },
      });
      const lines = trail.map((e) => `${e.createdAt.toISOString().slice(11, 23)} ${e.outcome} attempt ${e.attempt} msg ${e.messageId?.slice(0, 8)} ${JSON.stringify(e.details)}`);
      return `${u.stage} ${u.documentId}#${u.pageNumber}: ${u.started} attempts, ${u.retries} retries\n    ${lines.join("\n    ")}`;
    }),
  );
  expect(trails, "units worked more often than their retries explain").toEqual([]);
  if (counted) {
    expect(counted.renders, "renders beyond recorded convert attempts").toBeLessThanOrEqual(convert);
    expect(counted.modelCalls, "model calls beyond recorded inference attempts").toBeLessThanOrEqual(inference);
  }
  return { convert, inference };
}
