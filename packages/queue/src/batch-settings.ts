import type { PrismaClient } from "@docpipe/db";
import { z } from "zod";

/** What happens to a page that no engine draws cleanly (batch option `onDamagedPage`). */
export type DamagedPagePolicy = "flag" | "fail";

/** The options of a batch that the workers act on, as stored in `Batch.options` by ingestion. */
export interface BatchSettings {
  /** `skipAlreadyProcessed`: a document whose content an earlier batch of the owner finished ends done at once. */
  skipDuplicates: boolean;
  /** `flag` (default): the page keeps its best image, marked degraded; `fail`: the page fails. */
  onDamagedPage: DamagedPagePolicy;
  owner: string | null;
}

// Read leniently: a batch written before an option existed gets the option's default.
const StoredOptions = z.object({
  skipAlreadyProcessed: z.boolean().catch(false).default(false),
  onDamagedPage: z.enum(["flag", "fail"]).catch("flag").default("flag"),
});

/**
 * A batch's options and owner never change once it is created: remember them for the batches
 * a worker is busy with, so a document or page costs no extra batch lookup. Bounded; oldest out first.
 */
const cache = new Map<string, BatchSettings>();
const MAX_CACHED_BATCHES = 1_000;

/** The batch's settings, or undefined when there is no such batch. */
export async function batchSettings(prisma: PrismaClient, batchId: string): Promise<BatchSettings | undefined> {
  const cached = cache.get(batchId);
  if (cached) return cached;
  const batch = await prisma.batch.findUnique({ where: { id: batchId }, select: { options: true, owner: true } });
  if (!batch) return undefined;
  const options = StoredOptions.catch({ skipAlreadyProcessed: false, onDamagedPage: "flag" }).parse(batch.options ?? {});
  const settings: BatchSettings = { skipDuplicates: options.skipAlreadyProcessed, onDamagedPage: options.onDamagedPage, owner: batch.owner };
  if (cache.size >= MAX_CACHED_BATCHES) cache.delete(cache.keys().next().value!);
  cache.set(batchId, settings);
  return settings;
}
