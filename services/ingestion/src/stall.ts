import type { PrismaClient } from "@docpipe/db";
import { coerceError, type Logger, type Metrics } from "@docpipe/queue";

/** A batch that has made no progress for too long, and where its unfinished work waits. */
export interface Stall {
  /** Time of the batch's last audit event (its creation when it has none): nothing has happened since. */
  since: Date;
  /**
   * The pipeline stage holding most of the batch's unfinished documents (`ingestion` while the
   * listing has not finished, then `classify`, `split-large`, `split-small`, `convert`, `inference`).
   */
  stage: string;
  /** Unfinished documents at that stage. */
  documents: number;
  /** Stage of the last audit event, when there is one. */
  lastStage: string | null;
}

/** Where a document in a given state (and class) waits: the stage that moves it on. */
function stageOf(state: string, cls: string | null): string {
  switch (state) {
    case "queued":
      return "classify";
    case "classified":
    case "splitting":
      if (cls === "large") return "split-large";
      if (cls === "small") return "split-small";
      return cls === "single" ? "convert" : "classify";
    case "converting":
      return "convert";
    default:
      return "inference";
  }
}

/**
 * Reports a batch as stalled when it is still listing or processing and its last audit event
 * is older than `stallAfterMs`. The first check is one index lookup (AuditEvent by batch and
 * time, newest first), so it is cheap for every status request; the stage is only worked out
 * (from the unfinished documents' states) for a batch that is stalled.
 */
export async function detectStall(
  prisma: PrismaClient,
  batch: { id: string; state: string; createdAt: Date },
  stallAfterMs: number,
  now: Date = new Date(),
): Promise<Stall | null> {
  if (batch.state !== "listing" && batch.state !== "processing") return null;
  const last = await prisma.auditEvent.findFirst({
    where: { batchId: batch.id },
    orderBy: { createdAt: "desc" },
    select: { createdAt: true, stage: true },
  });
  const since = last?.createdAt ?? batch.createdAt;
  if (now.getTime() - since.getTime() < stallAfterMs) return null;
  const lastStage = last?.stage ?? null;

  const groups = await prisma.$queryRaw<{ state: string; class: string | null; documents: bigint }[]>`
    SELECT d.state::text AS state, d.class::text AS class, count(*) AS documents
    FROM "Document" d
    WHERE d."batchId" = ${batch.id}::uuid AND d.state NOT IN ('done', 'failed')
    GROUP BY d.state, d.class`;
  const perStage = new Map<string, number>();
  for (const g of groups) {
    const stage = stageOf(g.state, g.class);
    perStage.set(stage, (perStage.get(stage) ?? 0) + Number(g.documents));
  }
  if (batch.state === "listing") {
    // The listing itself is what has not moved; documents already found may wait elsewhere too.
    return { since, stage: "ingestion", documents: [...perStage.values()].reduce((a, b) => a + b, 0), lastStage };
  }
  let stage = lastStage ?? "ingestion";
  let documents = 0;
  for (const [s, count] of perStage) {
    if (count > documents) [stage, documents] = [s, count];
  }
  if (stage === "convert" && documents > 0) {
    // `converting` lasts until the first result: when most of those documents' pages are
    // rendered already, the work is waiting on inference, not on the converter.
    const [pages] = await prisma.$queryRaw<{ pending: bigint; rendered: bigint }[]>`
      SELECT count(*) FILTER (WHERE p.state = 'pending') AS pending, count(*) FILTER (WHERE p.state = 'rendered') AS rendered
      FROM "Document" d JOIN "Page" p ON p."documentId" = d.id
      WHERE d."batchId" = ${batch.id}::uuid AND d.state = 'converting'`;
    if (pages && pages.rendered > pages.pending) stage = "inference";
  }
  return { since, stage, documents, lastStage };
}

/**
 * Unfinished batches (listing or processing) whose last audit event, or creation, is older than
 * `stallAfterMs`: the ones {@link detectStall} reports. One statement; each batch's newest event
 * is an index lookup (AuditEvent by batch and time).
 */
export async function countStalledBatches(prisma: PrismaClient, stallAfterMs: number, now: Date = new Date()): Promise<number> {
  const before = new Date(now.getTime() - stallAfterMs);
  const [row] = await prisma.$queryRaw<{ stalled: bigint }[]>`
    SELECT count(*) AS stalled FROM "Batch" b
    WHERE b.state IN ('listing', 'processing')
      AND COALESCE((SELECT max(e."createdAt") FROM "AuditEvent" e WHERE e."batchId" = b.id), b."createdAt") < ${before}`;
  return Number(row?.stalled ?? 0);
}

/**
 * Keeps the `StalledBatches` metric: counts stalled batches every `intervalMs` and reports the
 * last count at every metrics flush. Every ingestion task reports the same figure (alarms take the maximum).
 */
export function watchStalledBatches(opts: {
  prisma: PrismaClient;
  metrics: Metrics;
  stallAfterMs: number;
  logger: Logger;
  /** @defaultValue 60000 */
  intervalMs?: number;
}): { stop(): void } {
  let stalled = 0;
  opts.metrics.gauge("StalledBatches", () => stalled);
  const count = () =>
    void countStalledBatches(opts.prisma, opts.stallAfterMs).then(
      (n) => (stalled = n),
      (e: unknown) => opts.logger.warn({ err: coerceError(e) }, "counting stalled batches failed"),
    );
  count();
  const timer = setInterval(count, opts.intervalMs ?? 60_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
