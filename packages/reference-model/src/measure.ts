import { availableParallelism } from "node:os";
import { WorkerPool } from "@docpipe/pdf/worker-pool";
import { ImageDecodeError, measureInk, type InkOptions, type InkResult } from "./ink.js";
import type { MeasureTask } from "./measure-worker.js";

/** Where the model's measure runs. */
export interface Measurer {
  measure(bytes: Uint8Array): Promise<InkResult>;
  /** Lets measures under way finish, then stops the threads. */
  close(): Promise<void>;
}

// Far above any page the converter writes (its pixel cap's worth of RGB takes well under a
// second); only a thread that is stuck gets this far, and it is replaced.
const MEASURE_TIMEOUT_MS = 60_000;

/**
 * Measures on `threads` worker threads, started on the first image (a model that is never
 * called costs nothing), or on the calling thread when `threads` is 0. The measure is
 * synchronous CPU work: on threads, the caller's event loop (in `docpipe run`, every service's)
 * stays free while a page is counted.
 */
export function createMeasurer(opts: InkOptions, threads = availableParallelism()): Measurer {
  if (threads === 0) return { measure: (bytes) => measureInk(bytes, opts), close: async () => undefined };
  let pool: WorkerPool<MeasureTask, InkResult> | undefined;
  let closed = false;
  return {
    measure(bytes) {
      if (closed) return Promise.reject(new Error("the model's measure threads are stopped"));
      pool ??= new WorkerPool<MeasureTask, InkResult>({
        entry: new URL("./measure-worker.js", import.meta.url),
        size: threads,
        timeoutMs: MEASURE_TIMEOUT_MS,
        timeoutError: (_, ms) => new Error(`measuring the image took longer than ${ms} ms`),
        crashError: (_, cause) => new Error(`the measure thread died: ${cause.message}`, { cause }),
        rebuildError: (e) => (e.name === "ImageDecodeError" ? new ImageDecodeError(e.message) : new Error(e.message)),
      });
      // Move the bytes rather than copy them when they are the whole of their own buffer.
      const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
      return pool.run({ bytes, opts }, whole ? { transfer: [bytes.buffer] } : {});
    },
    async close() {
      closed = true;
      await pool?.close();
    },
  };
}
