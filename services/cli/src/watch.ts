import type { ApiClient, BatchStatus } from "./api.js";
import { ProgressView } from "./progress.js";

export interface WatchOptions {
  out?: NodeJS.WriteStream;
  /** @defaultValue 500 */
  pollMs?: number;
  /** Gives up after this long. @defaultValue no limit */
  timeoutMs?: number | undefined;
  signal?: AbortSignal;
  /** Stop as soon as the API reports the batch stalled (no audit event for STALL_AFTER_SECONDS). @defaultValue false */
  stopWhenStalled?: boolean;
}

/** Polls a batch until it completes (or fails, stalls when asked to, or the time runs out), drawing progress. */
export async function watchBatch(api: ApiClient, batchId: string, opts: WatchOptions): Promise<BatchStatus> {
  const view = new ProgressView(opts.out);
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  for (;;) {
    const status = await api.status(batchId);
    const finished = status.state === "completed" || status.state === "failed" || (opts.stopWhenStalled === true && !!status.stalled);
    const giveUp = Date.now() >= deadline || opts.signal?.aborted === true;
    view.update(status, finished || giveUp);
    if (finished || giveUp) return status;
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
  }
}
