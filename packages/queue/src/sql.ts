import { Prisma } from "@docpipe/db";

/**
 * The current time as the schema's `timestamp(3)` columns hold it: UTC, as Prisma writes them.
 * Raw SQL that sets `updatedAt` (the reconciler's idle clock) or another time uses this.
 */
export const NOW = Prisma.sql`(now() AT TIME ZONE 'UTC')`;
