import { z } from "zod";

/** What `Batch.options` holds. */
export const BatchOptions = z.object({
  onTooLarge: z.enum(["reject", "split"]).default("reject"),
  /** Absent is false; see CreateBatchBody. */
  skipAlreadyProcessed: z.boolean().optional(),
  /** What a page no engine draws cleanly becomes; the workers read it with `batchSettings` (@docpipe/queue). */
  onDamagedPage: z.enum(["flag", "fail"]).default("flag"),
});

/** The options a batch status shows, each its default when the stored options lack or garble it. */
export function storedOptions(options: unknown): Pick<BatchOptions, "onTooLarge" | "onDamagedPage"> {
  const parsed = BatchOptions.safeParse(options ?? {});
  const o = parsed.success ? parsed.data : BatchOptions.parse({});
  return { onTooLarge: o.onTooLarge, onDamagedPage: o.onDamagedPage };
}
export type BatchOptions = z.infer<typeof BatchOptions>;
