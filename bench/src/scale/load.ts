// The writer load of `pnpm bench:scale`: new documents go through the pipeline's database path
// (listing, classify, split, convert and inference of every page) in the batch under test, at a
// steady page rate, while the reads are timed. Each stage runs on the services' StageRunner with
// the lookups and writes the services make (their handlers are not callable without SQS and S3):
// no PDF is opened and nothing is sent to S3 or SQS, only the database sees the work. W itself is
// counted on a real run of the services (writes.ts); this load only has to write like them.
import { randomUUID } from "node:crypto";
import type { PrismaClient } from "../../../packages/db/src/index.ts";
import {
  alreadyDone,
  createLogger,
  imageKey,
  pageKey,
  pageRenderedWrites,
  rangeSplitWrites,
  recordPagesSplit,
  settleBatchIfEnded,
  type PageDoneRow,
  StageRunner,
  type HandlerContext,
} from "../../../packages/queue/src/index.ts";
import { scoredWrites } from "../../../services/inference-client/src/results.ts";
import { insertPage } from "../../../services/ingestion/src/insert-page.ts";

export interface WriterLoadOptions {
  prisma: PrismaClient;
  batchId: string;
  bucket: string;
  /** Pages per second over all writers. */
  pagesPerSecond: number;
  /** Documents in flight at once (each a chain of stage attempts, as one worker's messages). */
  concurrency: number;
  /** Pages per document. @defaultValue 10 */
  pagesPerDocument?: number;
}

export interface WriterLoadResult {
  pages: number;
  documents: number;
  seconds: number;
  errors: number;
  firstError: string | undefined;
}

export interface WriterLoad {
  stop(): Promise<WriterLoadResult>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const logger = createLogger({ service: "bench-scale-load", level: "silent" });

/** A first delivery of a message, as the worker hands it to a handler. */
function delivery(): HandlerContext {
  return { messageId: randomUUID(), attempt: 1, logger, signal: new AbortController().signal, message: {} };
}

/** Starts the load; `stop()` lets documents in flight finish and reports what was written. */
export function startWriterLoad(opts: WriterLoadOptions): WriterLoad {
  const { prisma, batchId, bucket } = opts;
  const perDoc = opts.pagesPerDocument ?? 10;
  const stages = new StageRunner({ prisma, workerId: "bench-scale/load" });
  let stopping = false;
  let pages = 0;
  let documents = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  /** Pages allowed so far at the target rate: a writer waits when it is ahead. */
  const pace = async () => {
    for (;;) {
      const allowed = ((performance.now() - t0) / 1000) * opts.pagesPerSecond;
      if (pages < allowed || stopping) return;
      await sleep(Math.max(1, ((pages - allowed) / opts.pagesPerSecond) * 1000));
    }
  };
  const unfinished = async (documentId: string) => {
    const d = await prisma.document.findUnique({ where: { id: documentId }, select: { state: true } });
    return d?.state === "done" || d?.state === "failed" ? alreadyDone({ state: d.state }) : undefined;
  };

  async function oneDocument(): Promise<void> {
    // Listing (ingestion): the row and its first audit record in one statement.
    const key = `bench-scale/load/${randomUUID()}.pdf`;
    const { inserted } = await insertPage(prisma, { batchId, bucket, workerId: "bench-scale/lister", objects: [{ key, size: 550_000 }] });
    const documentId = inserted[0]!.id;
    const doc = { batchId, documentId };

    // Classify (chunking-orchestrator): facts, then the state.
    await stages.run({
      stage: "classify",
      unit: doc,
      ctx: delivery(),
      lookup: () => unfinished(documentId),
      work: async () => {
        await prisma.document.update({ where: { id: documentId }, data: { class: "small", size: BigInt(550_000), pageCount: perDoc } });
        await prisma.document.updateMany({ where: { id: documentId, state: { in: ["queued"] } }, data: { state: "classified" } });
        return { details: { class: "small", size: 550_000, pageCount: perDoc } };
      },
    });

    // Split into pages (small splitter).
    await stages.run({
      stage: "split-small",
      unit: { ...doc, firstPage: 1, lastPage: perDoc },
      ctx: delivery(),
      lookup: () => unfinished(documentId),
      work: async (a) => {
        await prisma.document.updateMany({ where: { id: documentId, state: { in: ["queued", "classified"] } }, data: { state: "splitting" } });
        // The splitter writes a group of ten pages' rows before it sends their messages.
        await recordPagesSplit(prisma, doc, Array.from({ length: perDoc }, (_, i) => ({ pageNumber: i + 1, pdfKey: pageKey(doc, i + 1) })));
        return (await a.commitStatement({ pages: perDoc }, { with: rangeSplitWrites(doc, { firstPage: 1, lastPage: perDoc, key }) })).committed;
      },
    });

    for (let n = 1; n <= perDoc; n++) {
      await pace();
      const page = { ...doc, pageNumber: n };
      const where = { documentId_pageNumber: { documentId, pageNumber: n } };
      // Convert (page converter): the rendered row commits with the outcome.
      await stages.run({
        stage: "convert",
        unit: page,
        ctx: delivery(),
        recordPermanentFailure: false,
        lookup: async () => {
          const p = await prisma.page.findUnique({ where, select: { state: true, imageKey: true } });
          return p?.imageKey && (p.state === "done" || p.state === "rendered") ? alreadyDone({ reason: `page already ${p.state}` }, { checkRecorded: true }) : undefined;
        },
        work: async (a) => {
          const facts = { imageKey: imageKey(doc, n), width: 1275, height: 1650, dpi: 150, renderMs: 250, engine: "mupdf", degraded: false, degradedReason: null, warnings: [] };
          const details = { renderMs: 250, engine: "mupdf", degraded: false, degradedReason: null, warnings: [], pdfBytes: 55_000, pngBytes: 180_000 };
          return (await a.commitStatement(details, { with: pageRenderedWrites(doc, n, pageKey(doc, n), facts) })).committed;
        },
      });
      // Inference (inference client): the result commits with the outcome, then page and document move on.
      await stages.run({
        stage: "inference",
        unit: page,
        ctx: delivery(),
        recordPermanentFailure: false,
        lookup: async () => {
          const row = await prisma.page.findUnique({ where, select: { id: true, result: { select: { id: true } } } });
          return { id: row!.id, ...page };
        },
        work: async (a, ref) => {
          const response = { model: { name: "reference-ink", version: "1" }, output: { ink: 0.12, blank: false }, features: ["ink"] };
          const details = { model: response.model, features: response.features, latencyMs: 50, calls: 1 };
          const { committed, row } = await a.commitStatement<PageDoneRow>(details, scoredWrites(ref, response, 50));
          await settleBatchIfEnded(prisma, batchId, row);
          return committed;
        },
      });
      pages++;
    }
    documents++;
  }

  const loops = Array.from({ length: opts.concurrency }, async () => {
    while (!stopping) {
      try {
        await oneDocument();
      } catch (e) {
        errors++;
        firstError ??= e instanceof Error ? e.message : String(e);
        await sleep(100);
      }
    }
  });

  return {
    async stop() {
      stopping = true;
      await Promise.all(loops);
      await stages.flush();
      return { pages, documents, seconds: (performance.now() - t0) / 1000, errors, firstError };
    },
  };
}
