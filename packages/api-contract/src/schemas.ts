import { z } from "zod";

/**
 * Request schemas. Unknown fields are rejected (strict objects), so a typo in an option is
 * an error the caller sees instead of a setting that silently does nothing.
 */

/** Why `name` is not a valid S3 bucket name (general purpose buckets), or undefined when it is. */
export function bucketNameProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return "must be 3 to 63 characters long";
  if (!/^[a-z0-9.-]+$/.test(name)) return "may contain only lowercase letters, digits, dots and hyphens";
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name)) return "must begin and end with a letter or digit";
  if (name.includes("..")) return "must not contain two adjacent dots";
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return "must not be formatted as an IP address";
  for (const p of ["xn--", "sthree-", "amzn-s3-demo-"]) if (name.startsWith(p)) return `must not start with ${p}`;
  for (const s of ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"])
    if (name.endsWith(s)) return `must not end with ${s}`;
  return undefined;
}

/** Pairs of prefixes where one contains the other: their keys would be listed twice. */
export function overlappingPrefixes(prefixes: readonly string[]): [string, string][] {
  const sorted = [...prefixes].sort();
  const overlaps: [string, string][] = [];
  // After sorting, a prefix that contains others is directly followed by the first of them.
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (b.startsWith(a)) overlaps.push([a, b]);
  }
  return overlaps;
}

/** A UTF-16 code unit of a surrogate pair without its other half: not a Unicode character, so no UTF-8 for it. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Why `s` is not text the pipeline can keep: Postgres text cannot hold NUL, and a lone
 * surrogate has no UTF-8 form (S3 could never list such a key). Undefined when it is fine.
 */
export function textProblem(s: string): string | undefined {
  if (s.includes("\u0000")) return "must not contain a NUL character (\\u0000)";
  if (LONE_SURROGATE.test(s)) return "must not contain a lone UTF-16 surrogate (\\ud800-\\udfff): it is not Unicode text";
  return undefined;
}

/**
 * The first string in a request part (a parsed JSON body, a query, path parameters or headers),
 * object keys included, that is not text the pipeline can keep: its dotted path and why.
 * Checked before any schema, so no field (today's or a future one) can carry it to the database.
 */
export function findTextProblem(value: unknown, path: string[] = [], depth = 0): { path: string; message: string } | undefined {
  if (typeof value === "string") {
    const problem = textProblem(value);
    return problem === undefined ? undefined : { path: path.join("."), message: problem };
  }
  // Bodies are at most BODY_LIMIT_BYTES, so their depth is bounded; past 64 levels no schema of ours matches anyway.
  if (value === null || typeof value !== "object" || depth > 64) return undefined;
  for (const [k, v] of Object.entries(value)) {
    const keyProblem = textProblem(k);
    if (keyProblem) return { path: [...path, k].join("."), message: `field name ${keyProblem}` };
    const found = findTextProblem(v, [...path, k], depth + 1);
    if (found) return found;
  }
  return undefined;
}

/** A PDF, by its key's extension: the API lists only these, and counts every other key as skipped. */
export const isPdfKey = (key: string): boolean => /\.pdf$/i.test(key);

/** S3 keys are at most 1024 bytes of UTF-8. */
const MAX_KEY_BYTES = 1024;

export const CreateBatchBody = z
  .strictObject({
    bucket: z.string().superRefine((name, ctx) => {
      const problem = bucketNameProblem(name);
      if (problem) ctx.addIssue({ code: "custom", message: `invalid S3 bucket name: ${problem}` });
    }),
    prefixes: z
      .array(
        z
          .string()
          .refine((p) => Buffer.byteLength(p, "utf8") <= MAX_KEY_BYTES, "a prefix is at most 1024 bytes")
          .refine((p) => !p.startsWith("/"), "a prefix must not start with / (S3 keys do not)"),
      )
      .min(1, "at least one prefix is required (use \"\" for the whole bucket)")
      .max(100, "at most 100 prefixes per batch"),
    /** A person's name for the batch, shown in reports. */
    label: z.string().trim().min(1).max(200).optional(),
    onTooLarge: z
      .enum(["reject", "split"])
      .optional()
      .meta({
        description:
          "What happens when the prefixes hold more PDFs than one batch may (MAX_DOCUMENTS_PER_BATCH): " +
          "`reject` (default) counts first and fails the batch with `batch_too_large` before queueing anything; " +
          "`split` continues the listing in follow-up batches (`parentBatchId` = the previous one).",
      }),
    skipAlreadyProcessed: z.boolean().optional().meta({
      description:
        "Skip a document whose content (SHA-256) matches a document done in an earlier batch: it ends done " +
        "without pages of its own, `duplicateOfId` naming that document (counted in the report's documents.skippedDuplicates).",
    }),
    onDamagedPage: z
      .enum(["flag", "fail"])
      .optional()
      .meta({
        description:
          "What happens to a page that no engine (mupdf, then pdfium) draws cleanly: `flag` (default) keeps the best image " +
          "there is, sends it on to the model and marks the page `degraded` with the engines' warnings (counted per reason " +
          "in the report); `fail` fails the page (`corrupt_page`), as a strict batch wants. A page that no engine draws at all fails either way.",
      }),
  })
  .superRefine((body, ctx) => {
    for (const [a, b] of overlappingPrefixes(body.prefixes)) {
      ctx.addIssue({
        code: "custom",
        path: ["prefixes"],
        message: a === b ? `prefix "${a}" is listed twice` : `prefix "${a}" already contains prefix "${b}"`,
      });
    }
  })
  .meta({ example: { bucket: "scans-inbox", prefixes: ["2026/11/"], label: "november scans", onTooLarge: "split" } });
export type CreateBatchBody = z.infer<typeof CreateBatchBody>;
/** What a client sends to `POST /batches` (optional fields may be left out). */
export type CreateBatchRequest = z.input<typeof CreateBatchBody>;

/**
 * `POST /batches` headers. `Idempotency-Key`: a client that retries a submission (a timeout, a
 * lost answer) sends the same key, and gets the batch its first request created instead of a
 * second one. Keys belong to the API key that sent them and are kept 24 hours.
 */
export const CreateBatchHeaders = z.object({
  "idempotency-key": z
    .string()
    .regex(/^[\x21-\x7e]{1,255}$/, "must be 1 to 255 printable ASCII characters, no spaces (a UUID is a good choice)")
    .optional()
    .meta({ description: "Same key and body within 24 hours: the first request's batch (200). Same key, another body: 422." }),
});

export const IdParams = z.strictObject({ id: z.uuid({ error: "must be a UUID" }) });

export const documentStates = ["queued", "classified", "splitting", "converting", "inferring", "done", "failed"] as const;

export const ListDocumentsQuery = z.strictObject({
  state: z.enum(documentStates).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** Opaque: the `nextCursor` of the previous page. */
  cursor: z.string().min(1).max(2000).optional(),
});

/** The most per-document entries one report answer holds; `perDocumentNextCursor` leads to the rest. */
export const MAX_REPORT_DOCUMENTS = 1000;

export const ReportQuery = z
  .strictObject({
    /** Adds one entry per document (source key, state, page, PNG and result counts, failure), a page at a time in key order. */
    documents: z
      .enum(["true", "false"], { error: "documents must be true or false" })
      .default("false")
      .transform((v) => v === "true"),
    /** Entries per page of the per-document list. */
    limit: z.coerce.number().int().min(1).max(MAX_REPORT_DOCUMENTS).default(MAX_REPORT_DOCUMENTS),
    /** Opaque: the `perDocumentNextCursor` of the previous answer. */
    cursor: z.string().min(1).max(2000).optional(),
  })
  .superRefine((q, ctx) => {
    if (q.cursor !== undefined && !q.documents) {
      ctx.addIssue({ code: "custom", path: ["cursor"], message: "cursor pages the per-document list: pass documents=true with it" });
    }
  });

/** Keyset cursor: the last key of the previous page (documents are ordered by key). */
export function encodeCursor(lastKey: string): string {
  return Buffer.from(JSON.stringify({ k: lastKey }), "utf8").toString("base64url");
}

export function decodeCursor(cursor: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    const r = z.object({ k: z.string() }).safeParse(parsed);
    // A forged cursor may hold anything: only a key S3 could have listed goes on to the database.
    if (!r.success || textProblem(r.data.k) || Buffer.byteLength(r.data.k, "utf8") > MAX_KEY_BYTES) return undefined;
    return r.data.k;
  } catch {
    return undefined;
  }
}

/** Zod issues as `details`: where (a dotted path) and what. */
export function issuesToDetails(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
}
