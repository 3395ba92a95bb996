import { Prisma, queryRows, type PrismaClient } from "@docpipe/db";
import type { Stage } from "../contracts.js";
import { coerceError, TransientError } from "../errors.js";
import { auditInsertSql } from "../audit.js";
import { NOW } from "../sql.js";
import type { StageUnit } from "./trail.js";

/**
 * Claims: a stage attempt holds its unit's row while it works, so that a second delivery of the
 * same unit (a duplicate message, a re-sent one) does not render, score or split it again at the
 * same time. The claim is written by the attempt's `started` record and released by its outcome
 * record, each one statement, so a claim costs no write of its own.
 *
 * A claim is won when the row is not yet done for the stage (its completion record) and its
 * lease is free, expired, already this message's (a redelivery after a crash takes its own
 * claim back), or an earlier stage's: the stages of a unit follow one another, and the next one
 * can start (its message sent) before the previous one has recorded its outcome.
 */

/** Stages in pipeline order: a later one may take a unit over from an earlier one. */
const ORDER = ["classify", "split-large", "split-small", "convert", "inference"] as const satisfies readonly Stage[];
type ClaimedStage = (typeof ORDER)[number];

const isClaimed = (stage: Stage): stage is ClaimedStage => (ORDER as readonly Stage[]).includes(stage);

/** The row a stage attempt claims. */
export type ClaimTarget =
  | { table: "Document"; stage: "classify" | "split-large"; documentId: string }
  | { table: "Chunk"; stage: "split-small"; documentId: string; firstPage: number; lastPage: number; key: string }
  | { table: "Page"; stage: "convert" | "inference"; documentId: string; pageNumber: number };

/** The row a stage attempt on `unit` claims, or none for stages that do not claim (the failsafe's). */
export function claimTarget(stage: Stage, unit: StageUnit): ClaimTarget | undefined {
  if (!isClaimed(stage)) return undefined;
  const { documentId } = unit;
  switch (stage) {
    case "classify":
    case "split-large":
      return { table: "Document", stage, documentId };
    case "split-small":
      if (unit.firstPage === undefined || unit.lastPage === undefined || unit.key === undefined) return undefined;
      return { table: "Chunk", stage, documentId, firstPage: unit.firstPage, lastPage: unit.lastPage, key: unit.key };
    case "convert":
    case "inference":
      if (unit.pageNumber === undefined) return undefined;
      return { table: "Page", stage, documentId, pageNumber: unit.pageNumber };
  }
}

export type ClaimOutcome = { won: true } | { won: false; reason: "done" | "held"; holder?: { stage: string | null; owner: string | null } };

const rank = (stage: Prisma.Sql) => Prisma.sql`array_position(ARRAY[${Prisma.join([...ORDER])}]::text[], ${stage})`;

/** When the row does not yet have the stage's completion record. */
function notDone(t: ClaimTarget, row: string): Prisma.Sql {
  const r = Prisma.raw(row);
  switch (t.stage) {
    case "classify":
      return Prisma.sql`${r}.state = 'queued'`;
    case "split-large":
      return Prisma.sql`${r}."splitAt" IS NULL AND ${r}.state NOT IN ('done', 'failed')`;
    case "split-small":
      return Prisma.sql`${r}."splitAt" IS NULL`;
    case "convert":
      // A done page without its image was scored from a PNG whose converter died before writing the row: render it again.
      return Prisma.sql`NOT (${r}."imageKey" IS NOT NULL AND ${r}.state IN ('rendered', 'done'))`;
    case "inference":
      // On the row itself, not a look at InferenceResult: a claim that waited for the row's lock
      // rechecks the row as the committed result left it, but would see other tables as of its start.
      return Prisma.sql`${r}.state <> 'done'`;
  }
}

function whereUnit(t: ClaimTarget, row: string): Prisma.Sql {
  const r = Prisma.raw(row);
  switch (t.table) {
    case "Document":
      return Prisma.sql`${r}.id = ${t.documentId}::uuid`;
    case "Chunk":
      return Prisma.sql`${r}."documentId" = ${t.documentId}::uuid AND ${r}."firstPage" = ${t.firstPage}`;
    case "Page":
      return Prisma.sql`${r}."documentId" = ${t.documentId}::uuid AND ${r}."pageNumber" = ${t.pageNumber}`;
  }
}

function free(t: ClaimTarget, row: string, owner: string): Prisma.Sql {
  const r = Prisma.raw(row);
  const held = Prisma.sql`${r}."leaseUntil" IS NULL OR ${r}."leaseUntil" < ${NOW} OR ${r}."leaseOwner" = ${owner}`;
  // A chunk has one stage; a document and a page pass from stage to stage.
  if (t.table === "Chunk") return Prisma.sql`(${held})`;
  return Prisma.sql`(${held} OR ${rank(Prisma.sql`${r}."leaseStage"`)} < ${rank(Prisma.sql`${t.stage}::text`)})`;
}

function writeFailed(e: unknown, t: ClaimTarget, what: string): TransientError {
  const cause = coerceError(e);
  return new TransientError("audit_write_failed", `could not store the ${t.stage}/${what} record: ${cause.message}`, {
    cause,
    documentId: t.documentId,
  });
}

/**
 * Claims the unit and writes the attempt's `started` record, in one statement. When the claim
 * is lost, nothing is written, and the outcome says why: the unit is done for the stage, or
 * another delivery holds it. A unit whose row does not exist yet (a page the converter itself
 * writes) has nothing to contend for: the claim counts as won and `started` is written alone.
 */
export async function claimAndStart(
  prisma: PrismaClient,
  t: ClaimTarget,
  owner: string,
  leaseSeconds: number,
  started: Prisma.AuditEventUncheckedCreateInput,
): Promise<ClaimOutcome> {
  const until = Prisma.sql`${NOW} + make_interval(secs => ${leaseSeconds}::double precision)`;
  const lease = t.table === "Chunk" ? Prisma.sql`"leaseOwner" = ${owner}, "leaseUntil" = ${until}` : Prisma.sql`"leaseStage" = ${t.stage}, "leaseOwner" = ${owner}, "leaseUntil" = ${until}`;
  const claim =
    t.table === "Chunk"
      ? // A small document has no chunk row until its split claims one.
        Prisma.sql`
        INSERT INTO "Chunk" ("id", "documentId", "firstPage", "lastPage", "key", "createdAt", "updatedAt", "leaseOwner", "leaseUntil")
        VALUES (gen_random_uuid(), ${t.documentId}::uuid, ${t.firstPage}, ${t.lastPage}, ${t.key}, ${NOW}, ${NOW}, ${owner}, ${until})
        ON CONFLICT ("documentId", "firstPage") DO UPDATE SET "leaseOwner" = EXCLUDED."leaseOwner", "leaseUntil" = EXCLUDED."leaseUntil"
        WHERE ${notDone(t, `"Chunk"`)} AND ${free(t, `"Chunk"`, owner)}
        RETURNING 1`
      : Prisma.sql`
        UPDATE ${Prisma.raw(`"${t.table}"`)} u SET ${lease}
        WHERE ${whereUnit(t, "u")} AND ${notDone(t, "u")} AND ${free(t, "u", owner)}
        RETURNING 1`;
  let rows: unknown[];
  try {
    rows = await queryRows(prisma, Prisma.sql`WITH claimed AS (${claim}) ${auditInsertSql(started, { from: Prisma.sql`claimed` })} RETURNING 1`);
  } catch (e) {
    throw writeFailed(e, t, "started");
  }
  if (rows.length > 0) return { won: true };

  // Lost, or nothing to claim: a second look says which (only duplicates get here).
  const table = Prisma.raw(`"${t.table}"`);
  const stageColumn = t.table === "Chunk" ? Prisma.sql`NULL::text` : Prisma.sql`u."leaseStage"`;
  const [row] = await queryRows<{ done: boolean; stage: string | null; owner: string | null }>(
    prisma,
    Prisma.sql`SELECT NOT (${notDone(t, "u")}) AS done, ${stageColumn} AS stage, u."leaseOwner" AS owner FROM ${table} u WHERE ${whereUnit(t, "u")}`,
  );
  if (!row) {
    try {
      await queryRows(prisma, auditInsertSql(started));
    } catch (e) {
      throw writeFailed(e, t, "started");
    }
    return { won: true };
  }
  return row.done ? { won: false, reason: "done" } : { won: false, reason: "held", holder: { stage: row.stage, owner: row.owner } };
}

/**
 * Writes the attempt's outcome record and releases its claim, in one statement (in `tx` when the
 * outcome commits with the unit's last writes). A claim taken over by a later stage meanwhile is
 * not this attempt's to release.
 */
export async function releaseAndRecord(
  db: PrismaClient | Prisma.TransactionClient,
  t: ClaimTarget,
  owner: string,
  outcome: Prisma.AuditEventUncheckedCreateInput,
): Promise<void> {
  try {
    await queryRows(
      db,
      Prisma.sql`
      WITH released AS (
        UPDATE ${Prisma.raw(`"${t.table}"`)} u SET "leaseUntil" = NULL
        WHERE ${whereUnit(t, "u")} AND u."leaseOwner" = ${owner}
      )
      ${auditInsertSql(outcome)}`,
    );
  } catch (e) {
    throw writeFailed(e, t, outcome.outcome);
  }
}

/** Releases an attempt's claim without a record (its outcome is recorded elsewhere, or not at all). */
export async function releaseClaim(prisma: PrismaClient, t: ClaimTarget, owner: string): Promise<void> {
  await queryRows(prisma, Prisma.sql`UPDATE ${Prisma.raw(`"${t.table}"`)} u SET "leaseUntil" = NULL WHERE ${whereUnit(t, "u")} AND u."leaseOwner" = ${owner}`);
}

/** Keeps a long attempt's claim (a large split): one statement every third of the lease, never per page. */
export async function renewClaim(prisma: PrismaClient, t: ClaimTarget, owner: string, leaseSeconds: number): Promise<void> {
  await queryRows(
    prisma,
    Prisma.sql`
    UPDATE ${Prisma.raw(`"${t.table}"`)} u SET "leaseUntil" = ${NOW} + make_interval(secs => ${leaseSeconds}::double precision)
    WHERE ${whereUnit(t, "u")} AND u."leaseOwner" = ${owner}`,
  );
}
