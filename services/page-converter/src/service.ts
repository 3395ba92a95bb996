import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import type { SQSClient } from "@aws-sdk/client-sqs";
import type { PrismaClient } from "@docpipe/db";
import { DEFAULT_DPI, DEFAULT_MAX_PIXELS, DEFAULT_PNG_LEVEL, PdfError, RenderPool, type RenderResult } from "@docpipe/pdf";
import {
  StageRunner,
  batchSettings,
  logEngineMessages,
  renderedFacts,
  type DamagedPagePolicy,
  type Committed,
  type StageScope,
  coerceError,
  consumedQueue,
  createWorker,
  DEFAULT_STOP_TIMEOUT_SECONDS,
  download,
  imageKey,
  isForeignKeyViolation,
  PermanentError,
  recordPageDeadLetter,
  recordPoison,
  SinglePageMessage,
  TransientError,
  uploadFile,
  type Logger,
  type QueueKey,
  type QueueUrls,
  pageRenderedWrites,
  type WorkerObservers,
} from "@docpipe/queue";
import { pino } from "pino";
import { defaults } from "./defaults.js";

export interface PageConverterOptions extends WorkerObservers {
  sqs: SQSClient;
  s3: S3Client;
  prisma: PrismaClient;
  /** Only `singlePage` is used. */
  queueUrls: Pick<Record<QueueKey, QueueUrls>, "singlePage">;
  /** Where the PNGs go, under `batches/{batchId}/documents/{documentId}/images/{n}.png`. */
  workBucket: string;
  /** @defaultValue 150 */
  dpi?: number;
  /**
   * Most pixels (width × height) of one PNG. A page that would be larger at `dpi` is rendered
   * at the highest lower DPI that fits, and that DPI is recorded on the page: every page still
   * gets an image, and an absurd page box (say 200 × 200 inches) cannot exhaust memory.
   * @defaultValue 50_000_000
   */
  maxPixels?: number;
  /** zlib level of the PNGs (0-9, lossless at every level): CPU time against bytes stored. @defaultValue 1 */
  pngLevel?: number;
  /** Time allowed to render one page; the render thread is replaced when it overruns. @defaultValue 60000 */
  renderTimeoutMs?: number;
  /** Deliveries of a page that time out before it is failed for good (the machine may just have been busy). @defaultValue 2 */
  renderTimeoutAttempts?: number;
  /** Render threads when the service builds its own pool. @defaultValue os.availableParallelism() */
  renderThreads?: number;
  /** A pool to share (the caller closes it); otherwise the service builds one and closes it on stop. */
  pool?: RenderPool;
  /**
   * Single-page PDFs up to this many bytes are read into memory and moved to a render thread, with
   * no file; a larger one is downloaded to a file under `tmpDir`, so it costs disk, not heap.
   * @defaultValue 32 MiB
   */
  inMemoryMaxBytes?: number;
  /** Single-page PDFs over inMemoryMaxBytes are downloaded here, one temporary directory per message. @defaultValue os.tmpdir() */
  tmpDir?: string;
  /** Messages handled at once. @defaultValue four per render thread (see defaults.pagesPerRenderThread) */
  concurrency?: number;
  /** Seconds to wait for in-flight pages on stop before releasing them to the queue. @defaultValue 25 */
  stopTimeoutSeconds?: number;
  /** Long-poll wait of the worker. @defaultValue 20 */
  waitTimeSeconds?: number;
  /** Visibility given on receive and on every heartbeat. @defaultValue the single-page queue's, from the catalog (120) */
  visibilityTimeoutSeconds?: number;
  /** Worker id in audit records. @defaultValue `page-converter/<pid>` */
  workerId?: string;
  logger?: Logger;
}

export interface PageConverter {
  start(): void;
  stop(): Promise<void>;
}

const STAGE = "convert" as const;

/** Builds the page converter: single-page queue → mupdf render on a thread pool → PNG in S3 → Page row. */
export function createPageConverter(opts: PageConverterOptions): PageConverter {
  const logger = (opts.logger ?? pino({ level: "silent" })).child({ component: "page-converter" });
  const workerId = opts.workerId ?? `page-converter/${process.pid}`;
  const dpi = opts.dpi ?? DEFAULT_DPI;
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const pngLevel = opts.pngLevel ?? DEFAULT_PNG_LEVEL;
  const renderTimeoutMs = opts.renderTimeoutMs ?? defaults.renderTimeoutMs;
  const inMemoryMaxBytes = opts.inMemoryMaxBytes ?? defaults.inMemoryMaxBytes;
  const timeoutAttempts = Math.max(1, opts.renderTimeoutAttempts ?? defaults.renderTimeoutAttempts);
  const ownPool = opts.pool === undefined;
  const pool = opts.pool ?? new RenderPool({ timeoutMs: renderTimeoutMs, ...(opts.renderThreads && { size: opts.renderThreads }) });
  const consumed = consumedQueue("singlePage", opts.queueUrls.singlePage, opts.visibilityTimeoutSeconds);
  const stages = new StageRunner({
    prisma: opts.prisma,
    workerId,
    logger,
    leaseSeconds: consumed.visibilityTimeoutSeconds,
    ...(opts.tmpDir !== undefined && { tmpDir: opts.tmpDir }),
  });
  const { prisma, s3 } = opts;

  async function render(source: string | Uint8Array, msg: SinglePageMessage, attempt: number, policy: DamagedPagePolicy): Promise<RenderResult> {
    try {
      return await pool.render(source, 0, { dpi, maxPixels, pngLevel, timeoutMs: renderTimeoutMs, rejectDamaged: policy === "fail" });
    } catch (e) {
      const ids = { documentId: msg.documentId, pageNumber: msg.pageNumber, key: msg.key, cause: e };
      if (e instanceof PdfError) {
        if (e.permanent) throw new PermanentError(e.code, `page ${msg.pageNumber} cannot be rendered: ${e.message}`, ids);
        if (e.code === "timeout" && attempt >= timeoutAttempts) {
          throw new PermanentError("render_timeout", `page ${msg.pageNumber} timed out on ${attempt} attempts: ${e.message}`, ids);
        }
        throw new TransientError(`render_${e.code}`, `page ${msg.pageNumber}: ${e.message}`, ids);
      }
      // A RangeError: the file has no page to render, so it is not the one-page PDF it should be.
      if (e instanceof RangeError) throw new PermanentError("corrupt", `page ${msg.pageNumber}: ${e.message}`, ids);
      throw new TransientError("render_failed", `page ${msg.pageNumber}: ${coerceError(e).message}`, ids);
    }
  }

  /**
   * The PNG is uploaded before the row gets its imageKey, so a row with one means the PNG is
   * there. A done row without one was scored from a PNG whose converter died before writing the
   * row (inference reacts to the upload): render again, so the page gets its facts. The claim
   * tells the two apart (see claim.ts), so a page costs no lookup of its own.
   */
  async function convert(msg: SinglePageMessage, a: StageScope): Promise<Committed> {
    // Kept for the life of the process (a batch's options never change): no statement per page.
    const policy = (await batchSettings(prisma, msg.batchId))?.onDamagedPage ?? "flag";
    // A page is small: read into memory and moved to the render thread, no file on the way.
    const pdf = await download(s3, msg.bucket, msg.key, { inMemoryMaxBytes, spillTo: async () => join(await a.dir(), "page.pdf") });
    const bytes = pdf.size;
    const renderStarted = performance.now();
    const png = await render("bytes" in pdf ? pdf.bytes : pdf.path, msg, a.attempt, policy);
    const renderMs = Math.round(performance.now() - renderStarted);
    const key = imageKey(msg, msg.pageNumber);
    // This upload is what triggers inference (S3 notification), so it comes after a good render only.
    await uploadFile(s3, opts.workBucket, key, png.png, "image/png");
    const facts = renderedFacts(key, png, renderMs);
    const scaledDown = png.dpi < dpi;
    logEngineMessages(a.log, png);
    // The record keeps what the page row does not (sizes, and what the engines said); the key and
    // the pixel size are on the row, and the dpi too unless the pixel cap lowered it.
    const { imageKey: _key, width: _width, height: _height, dpi: _dpi, ...drawn } = facts;
    const details = { ...drawn, pdfBytes: bytes, pngBytes: png.png.byteLength, ...(scaledDown && { scaledDown, dpi: facts.dpi }) };
    let committed: Committed;
    try {
      ({ committed } = await a.commitStatement(details, { with: pageRenderedWrites(msg, msg.pageNumber, msg.key, facts) }));
    } catch (e) {
      if (!isForeignKeyViolation(e)) throw e;
      throw new PermanentError("unknown_document", `no document ${msg.documentId} for page ${msg.pageNumber}`, { cause: e, documentId: msg.documentId });
    }
    if (facts.degraded) a.metrics.count("DegradedPages");
    const { warnings: _, ...brief } = facts;
    a.log.info({ ...brief, scaledDown }, "page rendered");
    return committed;
  }

  const worker = createWorker<SinglePageMessage>({
    name: workerId,
    ...consumed,
    sqs: opts.sqs,
    parse: (body) => SinglePageMessage.parse(body),
    // A permanent failure is recorded once, by onDeadLetter, with the page's reason.
    handle: (msg, ctx) =>
      stages.run({
        stage: STAGE,
        unit: msg,
        ctx,
        recordPermanentFailure: false,
        // A redelivery of a rendered page loses the claim: recorded as a lookup would have.
        checkRecordedWhenDone: true,
        work: (a) => convert(msg, a),
      }),
    // A rendered page has its PNG, so only a page still waiting for one fails.
    onDeadLetter: (msg, error, ctx) => recordPageDeadLetter(stages, STAGE, msg, error, ctx, { failFrom: ["pending", "failed"] }),
    onPoison: (info) => recordPoison(stages.audit, STAGE, info),
    // Several pages per render thread: while one renders, others are downloaded, uploaded and
    // recorded, or wait in the pool's queue, so a thread never waits on S3 or the database.
    concurrency: opts.concurrency ?? defaults.pagesPerRenderThread * pool.size,
    liveness: opts.liveness,
    metrics: opts.metrics,
    ...(opts.waitTimeSeconds !== undefined && { waitTimeSeconds: opts.waitTimeSeconds }),
    logger,
  });

  return {
    start() {
      worker.start();
      logger.info({ dpi, maxPixels, renderThreads: pool.size, renderTimeoutMs }, "page converter started");
    },
    async stop() {
      try {
        await worker.stop({ timeoutMs: (opts.stopTimeoutSeconds ?? DEFAULT_STOP_TIMEOUT_SECONDS) * 1000 });
      } finally {
        if (ownPool) await pool.close();
        await stages.flush();
      }
    },
  };
}
