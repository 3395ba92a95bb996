import { LOCAL_DIR } from "@docpipe/local-stack";
import type { Logger } from "@docpipe/queue";
import type { PassResult } from "@docpipe/reconciler";
import { existsSync } from "node:fs";
import path from "node:path";
import { finishBatch, withLocalSession, writeReportJson, type Finished } from "./local-session.js";
import { printable } from "./printable.js";

export interface ResumeOptions {
  /** @defaultValue "docpipe" */
  stackName?: string;
  /** Only this batch; otherwise every unfinished batch of the stack. */
  batchId?: string;
  /** The report(s) as `run --report-json` writes them: one object for one batch, an array for several. */
  reportJson?: string;
  logger: Logger;
  out?: NodeJS.WriteStream;
  /** Status poll period. @defaultValue 500 */
  pollMs?: number;
  /** Gives up waiting after this long. @defaultValue no limit */
  timeoutMs?: number;
}

export interface ResumeResult {
  batches: Finished[];
  /** What the first reconcile pass re-sent: the messages the crash took with it. */
  resent: PassResult["resent"];
  elapsedMs: number;
}

export class ResumeError extends Error {
  override readonly name = "ResumeError";
}

const WHAT: Record<keyof PassResult["resent"], string> = {
  document: "documents to classify",
  large: "large documents to split",
  small: "small documents to split",
  chunk: "chunks to split",
  page: "pages to render",
  image: "pages to score",
};

const describeResent = (r: PassResult["resent"]): string => {
  const parts = (Object.keys(WHAT) as (keyof typeof WHAT)[]).filter((k) => r[k] > 0).map((k) => `${r[k]} ${WHAT[k]}`);
  return parts.length ? parts.join(", ") : "nothing";
};

/** Why `stackName` cannot be resumed because it was never made, or undefined when it exists. */
export function missingStack(stackName: string): string | undefined {
  if (existsSync(path.join(LOCAL_DIR, stackName, "postgres"))) return undefined;
  return `there is no local stack "${printable(stackName)}" (under ${printable(path.join(LOCAL_DIR, stackName))}); docpipe run --stack ${printable(stackName)} makes one`;
}

/**
 * `docpipe resume`: finishes what a crash of a local run left unfinished. The stack's database
 * and objects survived; its queues lived in the dead process. With the stack and every service
 * started again, one reconcile pass that counts every unit as idle re-sends the message of each
 * unfinished document, chunk and page (the new queues hold none of them: the reconciler knows
 * from their CreatedTimestamp), then progress is shown until the batches end, as `run` does.
 */
export async function resumeStack(opts: ResumeOptions): Promise<ResumeResult> {
  const out = opts.out ?? process.stdout;
  const stackName = opts.stackName ?? "docpipe";
  const missing = missingStack(stackName);
  if (missing) throw new ResumeError(missing);
  const started = Date.now();
  return withLocalSession({ stackName, logger: opts.logger, out }, async (s) => {
    const batches = await s.stack.prisma.batch.findMany({
      where: opts.batchId ? { id: opts.batchId } : { state: { in: ["listing", "processing"] }, owner: "local" },
      orderBy: { createdAt: "asc" },
      select: { id: true, state: true, label: true },
    });
    if (opts.batchId && batches.length === 0) throw new ResumeError(`the stack "${stackName}" has no batch ${opts.batchId}`);
    const pass = await s.pipeline.reconciler.runOnce({ idleSeconds: 0, ...(opts.batchId && { batchId: opts.batchId }) });
    out.write(`re-sent what the crash left behind: ${describeResent(pass.resent)}\n`);
    if (batches.length === 0) out.write(`no unfinished batch in the stack "${printable(stackName)}"\n`);
    else out.write(`resuming ${batches.map((b) => `${b.id}${b.label ? ` (${printable(b.label)})` : ""}`).join(", ")}\n`);

    const finished: Finished[] = [];
    for (const b of batches) {
      if (s.interrupted.aborted) break;
      finished.push(await finishBatch(s, b.id, { perDocument: opts.reportJson !== undefined, pollMs: opts.pollMs ?? 500, timeoutMs: opts.timeoutMs }));
    }
    if (opts.reportJson && finished.length > 0) {
      await writeReportJson(out, opts.reportJson, finished.length === 1 ? finished[0]!.json : finished.map((f) => f.json));
    }
    const elapsedMs = Date.now() - started;
    out.write(`resumed in ${(elapsedMs / 1000).toFixed(1)} s\n`);
    return { batches: finished, resent: pass.resent, elapsedMs };
  });
}
