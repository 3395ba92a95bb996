import { z } from "zod";

/** What `Batch.options` holds. */
export const BatchOptions = z.object({
  onTooLarge: z.enum(["reject", "split"]).default("reject"),
  /** Absent is false; see CreateBatchBody. */
  skipAlreadyProcessed: z.boolean().optional(),
});
