import { start as startStack, type LocalStack } from "@docpipe/local-stack";
import { uploadFile, type Logger } from "@docpipe/queue";
import { promises as fs } from "node:fs";
import path from "node:path";
import { ApiClient, type BatchReport, type BatchStatus } from "./api.js";
import { startPipeline } from "./pipeline.js";
import { ProgressView } from "./progress.js";
import { formatReport } from "./report-table.js";

export interface RunOptions {
  folder: string;
  logger: Logger;
  label?: string;
  /** Where to write the report as JSON, with one entry per document (its `sourcePath` in the folder, state, counts, failure). */
  reportJson?: string;
  /** Local stack name: its data (Postgres, S3) stays under .local/<name> for Prisma Studio. @defaultValue "docpipe" */
  stackName?: string;
  dpi?: number;
  /** Gives up waiting after this long. @defaultValue no limit */
  timeoutMs?: number;
  /** Status poll period. @defaultValue 500 */
  pollMs?: number;
  out?: NodeJS.WriteStream;
}

export interface RunResult {
  batchId: string;
  completed: boolean;
  report: BatchReport;
}

/** Every regular file under `dir`, recursively, as paths relative to it. */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

async function uploadFolder(stack: LocalStack, folder: string, prefix: string): Promise<number> {
  const files = await listFiles(folder);
  let next = 0;
  // A few uploads at a time: s3rver and the disk are the limit, not the network.
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < files.length) {
        const rel = files[next++]!;
        await uploadFile(stack.s3, stack.stagingBucket, `${prefix}${rel.split(path.sep).join("/")}`, path.join(folder, rel));
      }
    }),
  );
  return files.length;
}

/**
 * `docpipe run`: the whole pipeline on a person's own folder of PDFs. Starts the local stack and
 * every service, uploads the folder to the staging bucket, submits it as one batch, shows
 * progress until every document is done or failed, prints the report and stops everything.
 */
export async function runFolder(opts: RunOptions): Promise<RunResult> {
  const out = opts.out ?? process.stdout;
  const folder = path.resolve(opts.folder);
  const stat = await fs.stat(folder).catch(() => undefined);
  if (!stat?.isDirectory()) throw new Error(`${opts.folder} is not a folder`);

  out.write(`starting the local stack and the pipeline…\n`);
  // Ctrl-C stops the services first and the stack after them, not the stack under running services.
  const interrupted = new AbortController();
  const onSignal = () => interrupted.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const stack = await startStack({
    name: opts.stackName ?? "docpipe",
    ephemeral: false,
    handleSignals: false,
    logger: opts.logger,
  });
  try {
    const pipeline = await startPipeline({ stack, logger: opts.logger, ...(opts.dpi !== undefined && { dpi: opts.dpi }) });
    try {
      const prefix = `runs/${new Date().toISOString().replace(/[:.]/g, "-")}/`;
      const uploaded = await uploadFolder(stack, folder, prefix);
      out.write(`uploaded ${uploaded} files to s3://${stack.stagingBucket}/${prefix}\n`);
      const api = new ApiClient(pipeline.apiUrl, pipeline.apiKey);
      const { batchId } = await api.submit({
        bucket: stack.stagingBucket,
        prefixes: [prefix],
        label: opts.label ?? path.basename(folder),
      });
      const status = await watchBatch(api, batchId, {
        out,
        pollMs: opts.pollMs ?? 500,
        timeoutMs: opts.timeoutMs,
        signal: interrupted.signal,
      });
      if (interrupted.signal.aborted) out.write(`\ninterrupted: stopping; the batch stays in the database as it is\n`);
      const completed = status.state === "completed";
      const report = await api.report(batchId, opts.reportJson !== undefined);
      out.write(`\n${formatReport(report)}\n`);
      out.write(
        `\nPNGs: s3://${stack.workBucket}/batches/${batchId}/documents/<document id>/images/<page>.png` +
          ` (on disk under ${path.join(stack.dataDir, "s3", stack.workBucket)})\n` +
          `Audit trail: pnpm studio (Prisma Studio on this run's database)\n`,
      );
      if (opts.reportJson) {
        // The report names S3 keys under this run's prefix; a person looks for the file in their folder.
        const perDocument = report.perDocument?.map((d) => ({
          sourcePath: path.join(folder, ...d.key.slice(prefix.length).split("/")),
          ...d,
        }));
        await fs.writeFile(opts.reportJson, `${JSON.stringify({ ...report, ...(perDocument && { perDocument }) }, null, 2)}\n`);
        out.write(`report written to ${opts.reportJson}\n`);
      }
      return { batchId, completed, report };
    } finally {
      await pipeline.stop();
    }
  } finally {
    await stack.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** Polls a batch until it completes (or fails, or the time runs out), drawing progress. */
export async function watchBatch(
  api: ApiClient,
  batchId: string,
  opts: { out?: NodeJS.WriteStream; pollMs?: number; timeoutMs?: number | undefined; signal?: AbortSignal },
): Promise<BatchStatus> {
  const view = new ProgressView(opts.out);
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  for (;;) {
    const status = await api.status(batchId);
    const finished = status.state === "completed" || status.state === "failed";
    const giveUp = Date.now() >= deadline || opts.signal?.aborted === true;
    view.update(status, finished || giveUp);
    if (finished || giveUp) return status;
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
  }
}
