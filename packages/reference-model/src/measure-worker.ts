// Entry point of a reference model's measure thread: decodes and measures one image at a time.
import { serveTasks } from "@docpipe/pdf/worker-pool";
import { measureInk, type InkOptions, type InkResult } from "./ink.js";

export interface MeasureTask {
  bytes: Uint8Array;
  opts: InkOptions;
}

serveTasks<MeasureTask, InkResult>({
  handle: async ({ bytes, opts }) => ({ value: await measureInk(bytes, opts) }),
  spent: () => false,
  fatal: () => undefined,
  forwardLog: () => undefined,
});
