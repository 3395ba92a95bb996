import type { LocalStack } from "@docpipe/local-stack";
import { uploadFile, type Logger } from "@docpipe/queue";
import { promises as fs } from "node:fs";
import path from "node:path";
import type { BatchReport } from "./api.js";
import { finishBatch, rememberSource, withLocalSession, writeReportJson } from "./local-session.js";

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

  const session = { logger: opts.logger, out, ...(opts.stackName !== undefined && { stackName: opts.stackName }), ...(opts.dpi !== undefined && { dpi: opts.dpi }) };
  return withLocalSession(session, async (s) => {
    const prefix = `runs/${new Date().toISOString().replace(/[:.]/g, "-")}/`;
    const uploaded = await uploadFolder(s.stack, folder, prefix);
    out.write(`uploaded ${uploaded} files to s3://${s.stack.stagingBucket}/${prefix}\n`);
    const { batchId } = await s.api.submit({ bucket: s.stack.stagingBucket, prefixes: [prefix], label: opts.label ?? path.basename(folder) });
    // Should this process die, `docpipe resume` names each document's file from it.
    await rememberSource(s.stack, batchId, { folder, prefix });
    const finished = await finishBatch(s, batchId, { perDocument: opts.reportJson !== undefined, pollMs: opts.pollMs ?? 500, timeoutMs: opts.timeoutMs });
    if (opts.reportJson) await writeReportJson(out, opts.reportJson, finished.json);
    return { batchId, completed: finished.completed, report: finished.report };
  });
}
