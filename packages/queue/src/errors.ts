/**
 * Error classes shared by every service. A worker decides what to do with a failed message
 * from the error's type alone: a {@link PermanentError} dead-letters the message at once, anything
 * else is retried with backoff until the queue's redrive policy gives up.
 */

/** Ids that tell a person which message, queue or document an error belongs to. */
export interface ErrorIds {
  queueUrl?: string;
  messageId?: string;
  batchId?: string;
  documentId?: string;
  pageNumber?: number;
  bucket?: string;
  key?: string;
}

export interface DocpipeErrorOptions extends ErrorIds {
  cause?: unknown;
}

abstract class DocpipeError extends Error {
  /** A stable, machine-readable reason, e.g. `not_pdf` or `s3_unavailable`; audited as `errorCode`. */
  readonly code: string;
  readonly ids: ErrorIds;

  constructor(code: string, message: string, opts?: DocpipeErrorOptions) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    const { cause: _cause, ...ids } = opts ?? {};
    this.ids = ids;
  }
}

/** A failure that no retry can fix (bad input, unsupported file): the message is dead-lettered at once. */
export class PermanentError extends DocpipeError {}

/** A failure that may go away (throttling, 5xx, network): the message is retried with backoff. */
export class TransientError extends DocpipeError {}

/** A message body that is not JSON or does not match its queue's schema. */
export class PoisonMessageError extends PermanentError {}

/** The producer was handed a message it can never send (schema-invalid, too large, rejected by SQS as the sender's fault). */
export class MessageRejectedError extends PermanentError {}

/** Some entries of a SendMessageBatch still failed after every retry. */
export class QueueSendError extends TransientError {
  /** How many of the messages passed to `send` were not sent. */
  readonly failedCount: number;
  constructor(message: string, opts: DocpipeErrorOptions & { failedCount: number }) {
    const { failedCount, ...rest } = opts;
    super("sqs_send_failed", message, rest);
    this.failedCount = failedCount;
  }
}

/** A queue named by the catalog does not exist (wrong prefix, or infrastructure not deployed). */
export class QueueNotFoundError extends PermanentError {}

/** The S3 object does not exist; S3 is strongly consistent, so a retry will not find it either. */
export class S3ObjectNotFoundError extends PermanentError {}

/** Any other S3 failure (throttling, 5xx, network, permissions while they propagate). */
export class S3Error extends TransientError {}

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH"]);
/** Prisma: cannot reach / lost the database, pool timeout, transaction conflict or expiry. */
const TRANSIENT_PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024", "P2028", "P2034"]);
/**
 * Postgres (pg's errors, from `queryRows`): the same cases as the Prisma codes above. Connection
 * exceptions, serialization failure, deadlock, too many connections, shutting down or starting up.
 */
const TRANSIENT_POSTGRES_CODE = /^(08...|40001|40P01|53300|57P0[1-3])$/;

/**
 * True for failures a retry may fix, wherever they come from: a {@link TransientError}, a network
 * error, AWS throttling or a 5xx, the database unreachable or busy. Follows the `cause` chain.
 */
export function isTransient(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur && depth < 8; cur = (cur as { cause?: unknown }).cause, depth++) {
    if (cur instanceof TransientError) return true;
    if (typeof cur !== "object") return false;
    const err = cur as {
      name?: string;
      code?: unknown;
      $retryable?: unknown;
      $metadata?: { httpStatusCode?: number };
    };
    if (err.name === "PrismaClientInitializationError") return true;
    if (typeof err.code === "string" && (NETWORK_CODES.has(err.code) || TRANSIENT_PRISMA_CODES.has(err.code) || TRANSIENT_POSTGRES_CODE.test(err.code))) {
      return true;
    }
    if (err.$retryable) return true;
    const status = err.$metadata?.httpStatusCode;
    if (status !== undefined && (status >= 500 || status === 429)) return true;
    if (err.name === "TimeoutError" || err.name === "SlowDown" || err.name === "ThrottlingException") return true;
  }
  return false;
}

/**
 * Normalises whatever a `catch` caught into an `Error`, keeping the original as `cause` when it
 * was not one (a thrown string, an object from a callback API).
 */
export function coerceError(e: unknown): Error {
  if (e instanceof Error) return e;
  if (typeof e === "object" && e !== null && "message" in e && typeof e.message === "string") {
    const err = new Error(e.message, { cause: e });
    if ("name" in e && typeof e.name === "string") err.name = e.name;
    return err;
  }
  let text: string;
  try {
    text = typeof e === "string" ? e : JSON.stringify(e) ?? String(e);
  } catch {
    text = String(e);
  }
  return new Error(text, { cause: e });
}

/** The `code` of a docpipe error, the `name` of an AWS SDK error (`NoSuchKey`, `ThrottlingException`), or `internal`. */
export function errorCode(e: Error): string {
  if (e instanceof PermanentError || e instanceof TransientError) return e.code;
  if (e.name && e.name !== "Error") return e.name;
  return "internal";
}

/**
 * A write refused because a row it names does not exist (Postgres 23503): Prisma's P2003 from its
 * own queries, a raw statement's P2010 that carries the driver's foreign-key error, or pg's own
 * error from a statement run by `queryRows`.
 */
export function isForeignKeyViolation(e: unknown): boolean {
  return isPostgresError(e, "23503", "ForeignKeyConstraintViolation") || (e as { code?: unknown } | null)?.code === "P2003";
}

/** A write refused because a NOT NULL column got no value (Postgres 23502), from pg or a raw statement's P2010. */
export function isNotNullViolation(e: unknown): boolean {
  return isPostgresError(e, "23502", "NullConstraintViolation");
}

function isPostgresError(e: unknown, sqlState: string, adapterKind: string): boolean {
  if (typeof e !== "object" || e === null) return false;
  const { code, meta } = e as { code?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: unknown; originalCode?: unknown } } } };
  if (code === sqlState) return true;
  const cause = meta?.driverAdapterError?.cause;
  return code === "P2010" && (cause?.kind === adapterKind || cause?.originalCode === sqlState);
}
