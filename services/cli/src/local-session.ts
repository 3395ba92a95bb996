import { start as startStack, type LocalStack } from "@docpipe/local-stack";
import type { Logger } from "@docpipe/queue";
import { promises as fs } from "node:fs";
import path from "node:path";
import { ApiClient, reportWithDocuments, type BatchReport, type BatchStatus } from "./api.js";
import { printable } from "./printable.js";
import { startPipeline, type Pipeline } from "./pipeline.js";
import { formatReport } from "./report-table.js";
import { watchBatch } from "./watch.js";

/** A named local stack with every service running on it, as `run` and `resume` use it. */
export interface LocalSession {
  stack: LocalStack;
  pipeline: Pipeline;
  /** The ingestion API, with the local runner's key. */
  api: ApiClient;
  /** Aborted by Ctrl-C (SIGINT) or SIGTERM: stop waiting, then everything stops in order. */
  interrupted: AbortSignal;
  out: NodeJS.WriteStream;
}

export interface SessionOptions {
  /** @defaultValue "docpipe" */
  stackName?: string;
  logger: Logger;
  dpi?: number;
  /** The API's port on 127.0.0.1. @defaultValue 0 (a free one) */
  apiPort?: number;
  out?: NodeJS.WriteStream;
}

/**
 * Starts the named local stack and every service on it, runs `fn`, and stops the services,
 * then the stack, whatever happens. Ctrl-C stops the services first and the stack after them,
 * not the stack under running services.
 */
export async function withLocalSession<T>(opts: SessionOptions, fn: (s: LocalSession) => Promise<T>): Promise<T> {
  const out = opts.out ?? process.stdout;
  out.write(`starting the local stack and the pipeline…\n`);
  const interrupted = new AbortController();
  const onSignal = () => interrupted.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const stack = await startStack({ name: opts.stackName ?? "docpipe", ephemeral: false, handleSignals: false, logger: opts.logger });
    try {
      const pipeline = await startPipeline({
        stack,
        logger: opts.logger,
        ...(opts.dpi !== undefined && { dpi: opts.dpi }),
        ...(opts.apiPort !== undefined && { apiPort: opts.apiPort }),
      });
      try {
        const api = new ApiClient(pipeline.apiUrl, pipeline.apiKey);
        return await fn({ stack, pipeline, api, interrupted: interrupted.signal, out });
      } finally {
        await pipeline.stop();
      }
    } finally {
      await stack.stop();
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** Where a `run` uploaded its folder, kept beside the stack so that `resume` can name each document's file. */
export interface RunSource {
  folder: string;
  prefix: string;
}

const sourceFile = (stack: LocalStack, batchId: string) => path.join(stack.dataDir, "runs", `${batchId}.json`);

export async function rememberSource(stack: LocalStack, batchId: string, source: RunSource): Promise<void> {
  await fs.mkdir(path.dirname(sourceFile(stack, batchId)), { recursive: true });
  await fs.writeFile(sourceFile(stack, batchId), `${JSON.stringify(source)}\n`);
}

export async function recallSource(stack: LocalStack, batchId: string): Promise<RunSource | undefined> {
  try {
    return JSON.parse(await fs.readFile(sourceFile(stack, batchId), "utf8")) as RunSource;
  } catch {
    return undefined;
  }
}

export interface Finished {
  batchId: string;
  completed: boolean;
  report: BatchReport;
  /** The report as `--report-json` writes it: with each document's `sourcePath` when the folder is known. */
  json: BatchReport;
}

/**
 * Shows a batch's progress until it ends (or the session is interrupted), then prints its report
 * and where its PNGs and audit trail are. The report comes with one entry per document, each with
 * the file it came from when the batch was a `run` of a folder.
 */
export async function finishBatch(
  s: LocalSession,
  batchId: string,
  opts: { perDocument: boolean; pollMs?: number; timeoutMs?: number | undefined },
): Promise<Finished> {
  const { out, stack } = s;
  const status: BatchStatus = await watchBatch(s.api, batchId, { out, pollMs: opts.pollMs ?? 500, timeoutMs: opts.timeoutMs, signal: s.interrupted });
  if (s.interrupted.aborted) out.write(`\ninterrupted: stopping; the batch stays in the database as it is (docpipe resume finishes it)\n`);
  // Every document: the API answers 1,000 at a time, reportWithDocuments follows the cursor.
  const report = opts.perDocument ? await reportWithDocuments(s.api, batchId) : await s.api.report(batchId);
  out.write(`\n${formatReport(report)}\n`);
  out.write(
    `\nPNGs: s3://${stack.workBucket}/batches/${batchId}/documents/<document id>/images/<page>.png` +
      ` (on disk under ${path.join(stack.dataDir, "s3", stack.workBucket)})\n` +
      `Audit trail: pnpm studio (Prisma Studio on this run's database)\n`,
  );
  const source = await recallSource(stack, batchId);
  // The report names S3 keys under the run's prefix; a person looks for the file in their folder.
  const perDocument = source
    ? report.perDocument?.map((d) => ({ sourcePath: path.join(source.folder, ...d.key.slice(source.prefix.length).split("/")), ...d }))
    : report.perDocument;
  return { batchId, completed: status.state === "completed", report, json: { ...report, ...(perDocument && { perDocument }) } };
}

export async function writeReportJson(out: NodeJS.WriteStream, file: string, json: unknown): Promise<void> {
  await fs.writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
  out.write(`report written to ${printable(file)}\n`);
}
